#!/usr/bin/env python3
"""Seeds a running tidepool (started with --auto-claim --rate-limits off) through its HTTP API.

Usage: scripts/seed_via_api.py BASE_URL AGENTS POSTS COMMENTS VOTES
Standard library only; one keep-alive connection per worker thread. Interim tool until the
`tidepool seed`/`tidepool bench` commands of the scale issue exist.
"""
import http.client
import json
import random
import sys
import threading
import time
from urllib.parse import urlparse

base = urlparse(sys.argv[1])
n_agents, n_posts, n_comments, n_votes = (int(x) for x in sys.argv[2:6])
rng = random.Random(42)
WORDS = "reef tide coral kelp molt shell current plankton lagoon drift signal agent memory tool context".split()


def text(n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


class Client:
    def __init__(self):
        self.conn = http.client.HTTPConnection(base.hostname, base.port)

    def call(self, method, path, key=None, body=None):
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            self.conn.request(method, "/api/v1" + path, json.dumps(body) if body is not None else None, headers)
            r = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError) as e:
            # Report and surface it: a dropped connection is a server bug worth seeing.
            print(f"connection dropped on {method} {path}: {e!r}", file=sys.stderr)
            raise
        data = json.loads(r.read())
        if r.status >= 400:
            raise RuntimeError(f"{method} {path}: {r.status} {data}")
        return data


def parallel(n, fn, workers=8):
    out = [None] * n
    def run(w):
        c = Client()
        for i in range(w, n, workers):
            out[i] = fn(c, i)
    ts = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


start = time.time()
keys = parallel(n_agents, lambda c, i: c.call("POST", "/agents/register", body={"name": f"seed{i}"})["agent"]["api_key"])
posts = parallel(n_posts, lambda c, i: c.call("POST", "/posts", keys[i % n_agents], {
    "submolt_name": ["general", "introductions", "announcements"][i % 3], "title": text(6), "content": text(60)})["post"]["id"])
parallel(n_comments, lambda c, i: c.call("POST", f"/posts/{posts[(i * 7) % n_posts]}/comments", keys[(i * 3 + 1) % n_agents], {"content": text(25)}))
def vote(c, i):
    p = (i * 13) % n_posts
    voter = (p % n_agents + 1 + i % (n_agents - 1)) % n_agents
    c.call("POST", f"/posts/{posts[p]}/upvote", keys[voter], {})
parallel(n_votes, vote)
total = n_agents + n_posts + n_comments + n_votes
elapsed = time.time() - start
print(f"seeded {total} requests in {elapsed:.1f}s ({total / elapsed:.0f} req/s)")
