#!/usr/bin/env python3
"""Held-out evaluation set for the guard's personal-data detectors.

Writes `pii_eval.jsonl` beside this file: realistic leaks of personal data in many
surroundings (chat, e-mail signatures, JSON, forms, markdown tables, letters) for several
countries and languages, and hard negatives that share their shapes (versions, dates, prices,
order and tracking numbers, ISBNs, coordinates, log ids, "meet at the station", landmarks in
prose). Every value is fake but well formed: cards pass Luhn with real network prefixes,
IBANs have the country length and valid mod-97 check digits, phone numbers follow each
country's numbering plan (in reserved fiction ranges where the country has one).

Kept apart from the unit tests on purpose: the names, streets, towns and templates here are
not the ones `pii.rs` tests, so the numbers measure how the detectors generalise. No
third-party labelled data is used; every lexicon below was written for this file.

Deterministic: `python3 pii_eval.py` always writes the same file (fixed seed).
Scoring, from the workspace root:

    python3 crates/guard/corpus/pii_eval.py --ids | cargo run --release -q -- guard scan \
        | python3 crates/guard/corpus/pii_eval.py --score

prints recall per family and the false-positive rate on the hard negatives.
Fields: text, pii, secret (false), injection (false), family, source ("pii_eval"), plus
split ("eval") and lang, which the guard's eval CLI reads.
"""

import json
import random
import sys
from pathlib import Path

SEED = 20261128
PER_CLASS = 60

FIRST = ["Amara", "Jonas", "Léa", "Tomasz", "Ingrid", "Rafael", "Mei", "Oskar", "Chloé",
         "Dariusz", "Fenna", "Malik", "Greta", "Yusuf", "Elodie", "Agnieszka", "Bram", "Nadia"]
LAST = ["Okafor", "Lindqvist", "Moreau", "Kowalczyk", "Brandt", "Ferreira", "Tanaka", "Hollis",
        "Girard", "Wiśniewski", "Visser", "Haddad", "Vogel", "Demir", "Roussel", "Nowicka"]

# ---- value generators -------------------------------------------------------------------


def luhn_complete(prefix, length, rng):
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def card(rng):
    kind = rng.choice(["visa", "mc", "mc2", "amex", "disc"])
    if kind == "visa":
        n = luhn_complete("4" + str(rng.randrange(10, 99)), 16, rng)
    elif kind == "mc":
        n = luhn_complete(str(rng.randrange(51, 56)), 16, rng)
    elif kind == "mc2":
        n = luhn_complete(str(rng.randrange(2221, 2721)), 16, rng)
    elif kind == "amex":
        n = luhn_complete(rng.choice(["34", "37"]), 15, rng)
    else:
        n = luhn_complete("6011", 16, rng)
    sep = rng.choice([" ", "-", ".", "", " ", "/", "  "])
    if len(n) == 15:
        groups = [n[:4], n[4:10], n[10:]]
    else:
        groups = [n[i:i + 4] for i in range(0, 16, 4)]
    return sep.join(groups) if sep != "/" else "/".join(groups)


IBAN_SPECS = {  # country: BBAN layout (n = digit, a = capital letter, c = either)
    "DE": "n" * 18, "FR": "n" * 10 + "c" * 11 + "nn", "GB": "aaaa" + "n" * 14,
    "ES": "n" * 20, "NL": "aaaa" + "n" * 10, "PL": "n" * 24, "IT": "a" + "n" * 10 + "c" * 12,
    "BE": "n" * 12, "AT": "n" * 16, "CH": "n" * 17,
}


def iban(rng):
    cc = rng.choice(list(IBAN_SPECS))
    bban = "".join(
        str(rng.randrange(10)) if k == "n" else chr(65 + rng.randrange(26)) if k == "a"
        else rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ")
        for k in IBAN_SPECS[cc])
    num = "".join(str(int(ch, 36)) for ch in bban + cc + "00")
    check = 98 - int(num) % 97
    value = f"{cc}{check:02d}{bban}"
    style = rng.choice(["groups", "compact", "lower", "lower_groups", "odd", "double"])
    if style == "groups":
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    if style == "compact":
        return value
    if style == "lower":
        return value.lower()
    if style == "lower_groups":
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4)).lower()
    if style == "odd":
        return f"{value[:2]} {value[2:4]} {value[4:12]} {value[12:]}"
    return "  ".join(value[i:i + 4] for i in range(0, len(value), 4))


def digits(rng, n):
    return "".join(str(rng.randrange(10)) for _ in range(n))


def phone(rng, country):
    if country == "de":
        mob = rng.choice(["151", "160", "170", "176", "152"])
        sub = digits(rng, 8)
        return rng.choice([
            f"0{mob} {sub}", f"+49 {mob} {sub[:4]} {sub[4:]}", f"+49 (0){mob} {sub}",
            f"0{mob}-{sub}", f"+49 30 {digits(rng, 7)}", f"+49 (0)30 {digits(rng, 7)}",
            f"030/{digits(rng, 7)}", f"089 {digits(rng, 3)} {digits(rng, 4)}",
            f"0049 40 {digits(rng, 8)}",
        ])
    if country == "uk":
        sub = digits(rng, 3)
        return rng.choice([
            f"07700 900{sub}", f"+44 7700 900{sub}", f"020 7946 0{sub}",
            f"+44 (0)20 7946 0{sub}", f"0161 496 0{sub}", f"+447700900{sub}",
            f"(020) 7946 0{sub}", f"0113 496 0{sub}",
        ])
    if country == "fr":
        p = [f"{rng.randrange(10, 100)}" for _ in range(4)]
        lead = rng.choice(["6", "7", "1", "4"])
        return rng.choice([
            f"0{lead} {' '.join(p)}", f"+33 {lead} {' '.join(p)}", f"0{lead}.{'.'.join(p)}",
            f"0{lead}-{'-'.join(p)}", f"+33 (0){lead} {' '.join(p)}", f"0{lead}{''.join(p)}",
        ])
    if country == "pl":
        a, b, c = rng.choice(["512", "601", "798", "883", "665"]), digits(rng, 3), digits(rng, 3)
        return rng.choice([
            f"+48 {a} {b} {c}", f"{a}-{b}-{c}", f"+48 {a}-{b}-{c}", f"+48{a}{b}{c}",
            f"+48 22 {digits(rng, 3)} {digits(rng, 2)} {digits(rng, 2)}", f"{a} {b} {c}",
        ])
    area = rng.choice(["212", "415", "617", "303", "512", "206"])
    sub = f"555-01{digits(rng, 2)}" if rng.random() < 0.3 else f"{rng.randrange(200, 999)}-{digits(rng, 4)}"
    x, y = sub.split("-")
    return rng.choice([
        f"({area}) {x}-{y}", f"{area}.{x}.{y}", f"+1-{area}-{x}-{y}", f"{area}-{x}-{y}",
        f"+1 ({area}) {x}-{y}", f"1-{area}-{x}-{y}", f"+1 {area} {x} {y}", f"({area}){x}-{y}",
    ])


MAIL_DOMAINS = ["gmail", "outlook", "proton", "yahoo", "gmx", "orange", "wp", "fastmail"]
ORG_DOMAINS = ["lumenworks", "harborlabs", "kestrel-ai", "nordwind", "atelier-bleu", "polana"]
TLDS = ["com", "de", "fr", "io", "pl", "net", "co.uk", "org"]


def handle(rng):
    f, l = rng.choice(FIRST), rng.choice(LAST)
    f = f.lower().replace("é", "e").replace("ś", "s")
    l = l.lower().replace("ś", "s")
    return rng.choice([f"{f}.{l}", f"{f[0]}{l}", f"{f}_{l}{rng.randrange(10, 99)}", f"{f}{rng.randrange(1, 999)}", f])


def email_plain(rng):
    dom = rng.choice(MAIL_DOMAINS + ORG_DOMAINS)
    return f"{handle(rng)}@{dom}.{rng.choice(TLDS)}"


def email_obfuscated(rng):
    h, dom, tld = handle(rng), rng.choice(MAIL_DOMAINS + ORG_DOMAINS), rng.choice(["com", "de", "fr", "io", "net"])
    return rng.choice([
        f"{h} [at] {dom} [dot] {tld}", f"{h}(at){dom}(dot){tld}", f"{h} AT {dom} DOT {tld}",
        f"{h} at {dom} dot {tld}", f"{h} [at] {dom}.{tld}", f"{h}{{at}}{dom}{{dot}}{tld}",
        f"{h} (at) {dom} (dot) {tld}", f"{h}[at]{dom}[dot]{tld}",
    ])


US_STREETS = ["Willow", "Chestnut", "Harbor View", "Maplewood", "Lincoln", "Cedar Ridge", "Sycamore", "Juniper"]
US_TYPES = ["St", "Street", "Ave", "Avenue", "Blvd", "Rd", "Lane", "Dr", "Ct", "Way", "Pl", "Drive"]
US_CITIES = [("Portland", "OR", "972"), ("Austin", "TX", "787"), ("Columbus", "OH", "432"),
             ("Boise", "ID", "837"), ("Raleigh", "NC", "276"), ("Des Moines", "IA", "503")]
UK_STREETS = ["Beechwood", "Kingsley", "Hawthorn", "Marlborough", "Ashgrove", "Fernhill"]
UK_TYPES = ["Road", "Street", "Lane", "Close", "Avenue", "Crescent", "Gardens", "Grove"]
UK_TOWNS = [("Bristol", "BS8 4QT"), ("Manchester", "M14 6HX"), ("Norwich", "NR2 3JD"),
            ("London", "SE15 4RW"), ("Cardiff", "CF24 1NS"), ("York", "YO10 5DD")]
DE_STREETS = ["Kastanienallee", "Birkenweg", "Goethestraße", "Mühlenstr.", "Schillerplatz",
              "Rosengasse", "Am Lindenhof", "Bahnhofstraße", "Wiesenweg", "Brunnenstraße"]
DE_TOWNS = [("10437", "Berlin"), ("80331", "München"), ("50667", "Köln"), ("01067", "Dresden"),
            ("20095", "Hamburg"), ("70173", "Stuttgart")]
FR_TYPES = ["rue", "avenue", "boulevard", "place", "chemin", "impasse", "allée"]
FR_NAMES = ["des Tilleuls", "Jean Jaurès", "du Moulin", "de la République", "Pasteur",
            "des Acacias", "Émile Zola", "du Général Leclerc"]
FR_TOWNS = [("69003", "Lyon"), ("31000", "Toulouse"), ("13006", "Marseille"), ("44000", "Nantes"),
            ("67000", "Strasbourg"), ("33000", "Bordeaux")]


def address(rng, country):
    if country == "us":
        city, st, z = rng.choice(US_CITIES)
        street = f"{rng.randrange(10, 9999)} {rng.choice(US_STREETS)} {rng.choice(US_TYPES)}"
        unit = rng.choice(["", "", f", Apt {rng.randrange(1, 30)}{rng.choice('ABC')}", f" #{rng.randrange(100, 999)}", f", Suite {rng.randrange(100, 900)}"])
        zip5 = f"{z}{digits(rng, 2)}"
        return rng.choice([
            f"{street}{unit}, {city}, {st} {zip5}", f"{street}{unit}\n{city}, {st} {zip5}",
            f"{street}{unit}, {city} {st} {zip5}", f"{street}{unit}",
        ])
    if country == "uk":
        town, pc = rng.choice(UK_TOWNS)
        street = f"{rng.randrange(1, 250)} {rng.choice(UK_STREETS)} {rng.choice(UK_TYPES)}"
        flat = rng.choice(["", "", f"Flat {rng.randrange(1, 12)}, "])
        return rng.choice([
            f"{flat}{street}, {town} {pc}", f"{flat}{street}\n{town}\n{pc}", f"{flat}{street}, {town}, {pc}",
            f"{flat}{street}",
        ])
    if country == "de":
        plz, town = rng.choice(DE_TOWNS)
        street = f"{rng.choice(DE_STREETS)} {rng.randrange(1, 140)}{rng.choice(['', '', 'a', 'b'])}"
        return rng.choice([f"{street}, {plz} {town}", f"{street}\n{plz} {town}", f"{street}, D-{plz} {town}", street])
    plz, town = rng.choice(FR_TOWNS)
    street = f"{rng.randrange(1, 200)}{rng.choice(['', '', ' bis', ' ter'])} {rng.choice(FR_TYPES)} {rng.choice(FR_NAMES)}"
    return rng.choice([f"{street}, {plz} {town}", f"{street}\n{plz} {town}", f"{street} {plz} {town}", street])


# ---- surroundings -----------------------------------------------------------------------

SURROUND = {
    "en": [
        "hey, you can reach {who} on {v} if the deploy breaks again",
        "Thanks for the help today!\n\n--\n{who}\nPlatform team\n{v}",
        '{{"name": "{who}", "contact": "{v}", "role": "maintainer"}}',
        "Name: {who}\nContact: {v}\nReason for request: access to the staging bucket",
        "| owner | contact |\n|---|---|\n| {who} | {v} |",
        "Dear {who},\n\nplease confirm the details below are correct:\n{v}\n\nKind regards",
        "my human asked me to post this so the buyer can pay: {v}",
        "> forwarded from {who}: {v}\nanyone know if this is legit?",
        "Update for the team: {who}'s details changed to {v}, please fix the CRM.",
        "- [x] ship the release\n- [ ] send invoice to {who} ({v})",
    ],
    "de": [
        "Hallo zusammen, {who} ist erreichbar unter {v}.",
        "Mit freundlichen Grüßen\n{who}\n{v}",
        "Bitte an folgende Angaben senden: {v} (z. Hd. {who})",
    ],
    "fr": [
        "Bonjour, vous pouvez joindre {who} : {v}",
        "Cordialement,\n{who}\n{v}",
        "Coordonnées de {who} pour la livraison : {v}",
    ],
    "pl": [
        "Cześć, {who} jest dostępny pod {v}.",
        "Pozdrawiam,\n{who}\n{v}",
    ],
}
ADDRESS_LEAD = {
    "en": ["She lives at {v}.", "ship it to {v}", "Home address: {v}", "{who}\n{v}",
           '{{"shipping_address": "{v}"}}', "| name | address |\n|---|---|\n| {who} | {v} |"],
    "de": ["Lieferadresse: {v}", "{who} wohnt in der {v}.", "Anschrift:\n{who}\n{v}"],
    "fr": ["Adresse de livraison : {v}", "{who} habite au {v}.", "Envoyez le colis à :\n{who}\n{v}"],
}


def who(rng):
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def positive(rng, family, lang, value, templates):
    t = rng.choice(templates[lang])
    text = t.format(who=who(rng), v=value.replace("\n", "\\n") if t.startswith('{"') else value)
    return {"text": text, "pii": True, "family": family, "lang": lang}


NEGATIVES = [
    "Bumped the SDK from 2.14.3 to 2.15.0; changelog at the usual place.",
    "Meeting moved to 14.03.2025 at 09:30, room 4.12.",
    "Invoice total: €1.249,90 (incl. VAT), due 2025-04-01.",
    "Order 4021-7783-1190-22 shipped, tracking 1Z 999 AA1 01 2345 6784.",
    "ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2 are both in the reading list.",
    "The lab sits at 52.5200 N, 13.4050 E; the buoy at 48.8566, 2.3522.",
    "Solve 3 * 14159 + 26535 = x and report x mod 97.",
    "[2025-03-02 11:04:17] worker 7 req_id=0213-4456-7781 status=200 latency=38ms",
    "Build 20250302.4 passed 1,024 of 1,024 tests in 512.3 s.",
    "Let's meet at the station at noon, then walk to the museum.",
    "I'm good at chess dot puzzles, not so much at speed games.",
    "Look at the docs at example dot com style pages for inspiration.",
    "We stayed at home dot dot dot it was raining all weekend.",
    "The President's residence at 1600 Pennsylvania Avenue is a famous landmark.",
    "Sherlock's fictional home on Baker Street draws crowds of tourists.",
    "Walking down Main Street in the evening is the best part of the trip.",
    "Abbey Road is the name of the album and of the street on its cover.",
    "The Champs-Élysées and the rue de Rivoli are busy on Sundays.",
    "Die Königsallee in Düsseldorf ist eine bekannte Einkaufsstraße.",
    "Top 5 Ways To Improve Your Agent's Memory",
    "Route 66 road trip: 2,448 miles from Chicago to Santa Monica.",
    "Season 3 Street Fighter tournament starts Friday.",
    "GPU temps: 71.5 C at 1,830 MHz, 68.0 C at 1,710 MHz.",
    "Scores this week: 512 345 678 points in total across all servers? no, 512,345,678.",
    "The hash prefix was de89 3704 and the next block ab12 9900.",
    "Port range 30000-32767, pods 10.244.0.0/16, service CIDR 10.96.0.0/12.",
    "Serial numbers 4111-2222-3333 through 4111-2222-3399 were recalled.",
    "Temperature series: 06 12 18 24 30 degrees at each hour mark.",
    "Section 4.1.1.1.2 of the spec defines the header layout.",
    "Call stack depth reached 1024 at frame 0x7ffd 5a2c 1e40.",
    "The ratio was 3/4 and then 7/8, so roughly 0.875.",
    "we arrived at the venue at 7 and left at 11",
    "Use the template at docs.rs for the API reference.",
    "Price list: 19.99 / 29.99 / 49.99 per month.",
    "Apollo 11 landed on 20.07.1969 at 20:17 UTC.",
    "PLZ-Bereich 10115 bis 14199 gehört zu Berlin.",
    "Le code postal 75001 couvre le Louvre.",
    "Dimensions: 120 x 80 x 45 cm, weight 12.5 kg.",
    "Tally: 100-200-300 qualified, 400-500-600 pending.",
    "I rewrote 3 sections on the way to a cleaner design.",
]


def negative(rng, i):
    base = NEGATIVES[i % len(NEGATIVES)]
    lead = rng.choice(["", "Quick note: ", "FYI ", "From my log: ", ""])
    return {"text": lead + base, "pii": False, "family": "hard_negative", "lang": "en"}


def main():
    rng = random.Random(SEED)
    rows = []
    contact_classes = [
        ("email", lambda r: email_plain(r)),
        ("email_obfuscated", email_obfuscated),
        ("phone_de", lambda r: phone(r, "de")),
        ("phone_uk", lambda r: phone(r, "uk")),
        ("phone_fr", lambda r: phone(r, "fr")),
        ("phone_pl", lambda r: phone(r, "pl")),
        ("phone_us", lambda r: phone(r, "us")),
        ("payment_card", card),
        ("iban", iban),
    ]
    lang_of = {"phone_de": "de", "phone_fr": "fr", "phone_pl": "pl"}
    for family, make in contact_classes:
        for _ in range(PER_CLASS):
            lang = lang_of.get(family) if rng.random() < 0.5 else "en"
            lang = lang or rng.choice(["en", "en", "de", "fr"])
            rows.append(positive(rng, family, lang, make(rng), SURROUND))
    for country, lang in [("us", "en"), ("uk", "en"), ("de", "de"), ("fr", "fr")]:
        for _ in range(PER_CLASS):
            rows.append(positive(rng, f"address_{country}", lang, address(rng, country), ADDRESS_LEAD))
    for i in range(len(NEGATIVES) * 4):
        rows.append(negative(rng, i))
    out = Path(__file__).with_name("pii_eval.jsonl")
    with out.open("w", encoding="utf-8") as f:
        for r in rows:
            r.update({"secret": False, "injection": False, "source": "pii_eval", "split": "eval"})
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {out}")


def rows_on_disk():
    path = Path(__file__).with_name("pii_eval.jsonl")
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def emit_ids():
    """The set as `guard scan` input: {"id", "text"} per line."""
    for i, r in enumerate(rows_on_disk()):
        print(json.dumps({"id": i, "text": r["text"]}, ensure_ascii=False))


def score():
    """Recall per family and FPR, from `guard scan` output on stdin."""
    rows = rows_on_disk()
    flagged = {}
    for line in sys.stdin:
        out = json.loads(line)
        flagged[out["id"]] = "pii" in out.get("labels", [])
    per = {}
    misses = []
    for i, r in enumerate(rows):
        hit = flagged.get(i, False)
        fam = per.setdefault(r["family"], [0, 0])
        fam[0] += hit
        fam[1] += 1
        if hit != r["pii"]:
            misses.append(("MISS" if r["pii"] else "FP  ") + f" {r['family']}: {r['text']!r}")
    pos = [r for r in rows if r["pii"]]
    tp = sum(flagged.get(i, False) for i, r in enumerate(rows) if r["pii"])
    neg = len(rows) - len(pos)
    fp = sum(flagged.get(i, False) for i, r in enumerate(rows) if not r["pii"])
    for fam, (hit, n) in sorted(per.items()):
        kind = "FPR" if fam == "hard_negative" else "recall"
        print(f"  {fam:<18} {kind} {hit / n:.3f} ({hit}/{n})")
    print(f"pii recall {tp / len(pos):.3f} ({tp}/{len(pos)}), FPR {fp / max(neg, 1):.4f} ({fp}/{neg})")
    if "-v" in sys.argv:
        print("\n".join(misses))


if __name__ == "__main__":
    if "--ids" in sys.argv:
        emit_ids()
    elif "--score" in sys.argv:
        score()
    else:
        main()
