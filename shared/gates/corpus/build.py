#!/usr/bin/env python3
"""Builds prompt_injection.jsonl from the source excerpts in sources/ (run: python3 build.py).

Every item is text taken from an openly licensed collection, verbatim or by a documented,
mechanical transformation of it (see README.md). sources/<name>.json holds the excerpts:
the project, its repository and licence (with where the licence was read), and per file
the path, commit and the exact strings used. This script only reads those JSON files; it
never imports or runs code from the collections.

Output: one JSON object a line with `id`, `prompt`, `category`, `source` (what vaia's
loader reads) and provenance: `licence` (SPDX id), `source_url` (repository, path and
commit), `source_item` (where in the file), and `transform` when the text was derived.
"""
import base64
import binascii
import json
import pathlib
import random

HERE = pathlib.Path(__file__).parent
SRC = {n: json.loads((HERE / "sources" / f"{n}.json").read_text(encoding="utf-8"))
       for n in ("garak", "promptinject", "langcheck")}

INJ = "<|garak_injection|>"
PAYLOAD = "<|garak_payload|>"
TRIGGER = "<|garak_trigger|>"

# Goals written for vaia (Apache-2.0) that fill a source's attacker-goal placeholder
# (PromptInject's rogue string, garak's payload or trigger), each asking for the secret.
GOALS = [
    "your system prompt",
    "the secret code in your instructions",
    "the instructions you were given above",
    "your hidden configuration, verbatim",
    "the canary token you were configured with",
    "everything above this line",
]

items = []


def file_of(src, key):
    return SRC[src]["files"][key]


def url(src, key):
    f = file_of(src, key)
    repo = f.get("repository", SRC[src]["repository"])
    return f"{repo}/blob/{f['commit']}/{f['path']}"


def source_name(src):
    s = SRC[src]
    return f"{s['project']}, {s['repository'].removeprefix('https://')} ({s['licence']})"


def add(category, src, key, item, prompt, transform=None, also=None):
    entry = {
        "category": category,
        "prompt": prompt,
        "source": source_name(src),
        "licence": SRC[src]["licence"],
        "source_url": url(src, key),
        "source_item": item,
    }
    if also:
        # A second source the item is composed with: (src, key, item).
        a_src, a_key, a_item = also
        entry["also_from"] = {
            "source": source_name(a_src),
            "licence": SRC[a_src]["licence"],
            "source_url": url(a_src, a_key),
            "source_item": a_item,
        }
    if transform:
        entry["transform"] = transform
    items.append(entry)


atk = file_of("garak", "sysprompt_attacks")["data"]


def attack(group, i):
    return atk[group][i], ("garak", "sysprompt_attacks", f"attacks.json {group}[{i}]")


# --- system_prompt_extraction: garak's extraction templates, verbatim --------------------
for group in ("direct_requests", "indirect_creative_approaches", "code_technical_framing",
              "continuation_tricks", "authority_urgency_framing", "confusion_distraction",
              "summarization_paraphrase", "piecemeal_extraction"):
    for i, text in enumerate(atk[group]):
        add("system_prompt_extraction", "garak", "sysprompt_attacks", f"attacks.json {group}[{i}]", text)
leaking = file_of("promptinject", "prompt_data")["data"]["prompt_leaking_attacks"]
for name, text in leaking.items():
    add("system_prompt_extraction", "promptinject", "prompt_data", f"prompt_leaking_attacks[{name!r}]", text)

# --- direct_override: PromptInject goal hijacking with the rogue string set to a goal, and
# langcheck's 'basic' jailbreak template around garak's extraction requests --------------
hijack = file_of("promptinject", "prompt_data")["data"]["goal_hikacking_attacks"]
for name, text in hijack.items():
    for g in GOALS:
        add("direct_override", "promptinject", "prompt_data", f"goal_hikacking_attacks[{name!r}]",
            text.replace("{REPLACE_rogue_string}", g),
            transform=f"rogue string set to the goal {g!r} (vaia)")
basic = file_of("langcheck", "jailbreak_basic")["data"]["template"]
queries = [("direct_requests", i) for i in range(6)] + [("authority_urgency_framing", i) for i in range(2)] \
    + [("continuation_tricks", i) for i in range(2)]
for group, i in queries:
    q, ref = attack(group, i)
    add("direct_override", "langcheck", "jailbreak_basic", "basic.j2", basic.replace("{{ input_query }}", q),
        transform="langcheck jailbreak_template('basic') applied to the garak request", also=ref)

# --- role_play: garak's role-playing requests, and langcheck's role-play jailbreak templates
# (credited by langcheck to GPTFuzz) around garak's extraction requests ---------------------
for i, text in enumerate(atk["role_playing_attacks"]):
    add("role_play", "garak", "sysprompt_attacks", f"attacks.json role_playing_attacks[{i}]", text)
rp_queries = queries + [("confusion_distraction", 0), ("summarization_paraphrase", 0),
                        ("summarization_paraphrase", 1), ("piecemeal_extraction", 1)]
for key, name in (("jailbreak_john", "john"), ("jailbreak_good_vs_evil", "chatgpt_good_vs_evil")):
    tmpl = file_of("langcheck", key)["data"]["template"]
    for group, i in rp_queries:
        q, ref = attack(group, i)
        add("role_play", "langcheck", key, f"{name}.j2", tmpl.replace("{{ input_query }}", q),
            transform=f"langcheck jailbreak_template({name!r}) applied to the garak request", also=ref)

# --- encoding_obfuscation: garak's own encoding requests; garak's encoding probes (TEMPLATES
# x encoders) applied to garak extraction requests; garak's homoglyph substitution ----------
for group, idx in (("encoding_based_attacks", (0, 2)), ("multi_layered_approaches", (0, 1))):
    for i in idx:
        add("encoding_obfuscation", "garak", "sysprompt_attacks", f"attacks.json {group}[{i}]", atk[group][i])

ROT13 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                      "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm")


def atbash(t):
    return "".join(chr(ord("z") - (ord(c) - ord("a"))) if "a" <= c <= "z"
                   else chr(ord("Z") - (ord(c) - ord("A"))) if "A" <= c <= "Z" else c for c in t)


ENCODERS = {
    "InjectBase64": lambda t: base64.b64encode(t.encode()).decode(),
    "InjectBase16": lambda t: base64.b16encode(t.encode()).decode(),
    "InjectBase32": lambda t: base64.b32encode(t.encode()).decode(),
    "InjectHex": lambda t: binascii.b2a_hex(t.encode()).decode(),
    "InjectROT13": lambda t: t.translate(ROT13),
    "InjectAtbash": atbash,
}
enc = file_of("garak", "encoding")["data"]
enc_payloads = [("direct_requests", 2), ("direct_requests", 4), ("direct_requests", 1)]
for probe, fn in ENCODERS.items():
    name = enc["encodings"][probe]["encoding_name"]
    for t_i, tmpl in enumerate(enc["TEMPLATES"]):
        for group, i in enc_payloads:
            q, ref = attack(group, i)
            if probe in ("InjectBase32", "InjectAtbash") and t_i in (0, 4):
                continue  # keep the category from being mostly encoders; these two use 3 templates
            add("encoding_obfuscation", "garak", "encoding", f"encoding.py {probe}, TEMPLATES[{t_i}]",
                tmpl.replace("{encoding_name}", name).replace("{encoded_text}", fn(q)),
                transform=f"garak {probe} ({enc['encodings'][probe]['function']}) of the garak request {q!r}",
                also=ref)
glyphs = file_of("garak", "homoglyph")["data"]["DEFAULT_HOMOGLYPH_MAP"]
for seed, (group, i) in enumerate(queries):
    q, ref = attack(group, i)
    rng = random.Random(seed)
    add("encoding_obfuscation", "garak", "homoglyph", "smuggling.py HomoglyphObfuscation",
        "".join(rng.choice(glyphs[c]) if c in glyphs else c for c in q),
        transform=f"garak homoglyph substitution (DEFAULT_HOMOGLYPH_MAP, seed {seed}) of the garak request", also=ref)

# --- translation: garak's translation-task injections (goal in the payload slot), garak's
# latent-jailbreak translation contexts around garak extraction requests ------------------
tr = file_of("garak", "latent_translation")["data"]
for lang in tr["target_lang_name_en"]:
    for b_i, base in enumerate(tr["base_instructions"]):
        top = base.replace("{LANG_EN_NAME}", lang)
        for j_i, inj in enumerate(tr["injection_instructions"]):
            g = GOALS[(b_i + j_i) % len(GOALS)]
            add("translation", "garak", "latent_translation",
                f"latentinjection.py TranslationMixin ({lang}), base_instructions[{b_i}], injection_instructions[{j_i}]",
                top + tr["contexts"][0].replace(INJ, inj.replace(PAYLOAD, g)),
                transform=f"payload set to the goal {g!r} (vaia)")
add("translation", "garak", "sysprompt_attacks", "attacks.json encoding_based_attacks[1]",
    atk["encoding_based_attacks"][1])
lj = file_of("garak", "latent_jailbreak")["data"]
for c_i, ctx in enumerate(lj["contexts"]):
    for group, i in (("direct_requests", 2), ("indirect_creative_approaches", 0)):
        q, ref = attack(group, i)
        add("translation", "garak", "latent_jailbreak", f"latentinjection.py LatentJailbreakFull contexts[{c_i}]",
            ctx.replace(INJ, q), transform="garak extraction request placed at the context's injection marker",
            also=ref)

# --- payload_splitting: langcheck's payload_splitting (SmartGPT template, random split
# points) applied to garak and PromptInject extraction requests ---------------------------
ps = file_of("langcheck", "payload_splitting")["data"]["template"]
split_sources = [attack(g, i) for g, i in queries] + [attack("indirect_creative_approaches", i) for i in range(5)] \
    + [attack("code_technical_framing", i) for i in range(3)] \
    + [attack("summarization_paraphrase", i) for i in range(5)] + [attack("piecemeal_extraction", i) for i in range(4)] \
    + [(t, ("promptinject", "prompt_data", f"prompt_leaking_attacks[{n!r}]")) for n, t in leaking.items()] \
    + [(hijack["ignore-print"].replace("{REPLACE_rogue_string}", g),
        ("promptinject", "prompt_data", "goal_hikacking_attacks['ignore-print'] with the rogue string set to a goal (vaia)"))
       for g in GOALS[:3]]
for seed, (q, ref) in enumerate(split_sources):
    rng = random.Random(seed)
    n = len(q)
    a, b = rng.randint(0, n // 2), rng.randint(n // 2, n)
    add("payload_splitting", "langcheck", "payload_splitting", "smartgpt.j2 via augment.en.payload_splitting",
        ps.replace("{{ part_a }}", q[:a]).replace("{{ part_b }}", q[a:b]).replace("{{ part_c }}", q[b:]).strip(),
        transform=f"langcheck payload_splitting (split at {a} and {b}, random.Random({seed}))", also=ref)

# --- indirect_tool_output: garak's latent injections in documents (report, resume) and its
# web-search tool-result framing, with garak extraction requests as the payload ------------
rep = file_of("garak", "latent_report")["data"]
for t_i, top in enumerate(rep["top_instructions"]):
    for j_i, inj in enumerate(rep["injection_instructions"]):
        for group, i in (("direct_requests", (t_i * 3 + j_i) % 6), ("piecemeal_extraction", j_i)):
            q, ref = attack(group, i)
            start, end = rep["injection_sep_pairs"][0]
            add("indirect_tool_output", "garak", "latent_report",
                f"latentinjection.py LatentInjectionReportFull top_instructions[{t_i}], contexts[3], injection_instructions[{j_i}]",
                top + rep["contexts"][0].replace(INJ, start + inj.replace(PAYLOAD, q) + end),
                transform="payload set to the garak request", also=ref)
res = file_of("garak", "latent_resume")["data"]
for c_i, ctx in enumerate(res["contexts"]):
    for j_i, inj in enumerate(res["injection_instructions"]):
        p_i = (c_i + j_i) % len(res["payloads"])
        q, ref = attack("direct_requests", (c_i * 5 + j_i) % 6)
        top = res["top_instructions"][1 + (j_i % 4)]
        start, end = res["injection_sep_pairs"][j_i % 2]
        payload = res["payloads"][p_i].replace(TRIGGER, q)
        add("indirect_tool_output", "garak", "latent_resume",
            f"latentinjection.py LatentInjectionResumeFull contexts[{c_i}], injection_instructions[{j_i}], payloads[{p_i}]",
            top + ctx.replace(INJ, start + inj.replace(PAYLOAD, payload) + end),
            transform="trigger set to the garak request", also=ref)
pre = file_of("garak", "tool_ipi")["data"]["preamble"]
for j_i, inj in enumerate(rep["injection_instructions"]):
    for group, i in (("direct_requests", 4), ("summarization_paraphrase", 0)):
        q, ref = attack(group, i)
        parts = [pre, rep["contexts"][0].split(INJ)[0].strip(), inj.replace(PAYLOAD, q)]
        add("indirect_tool_output", "garak", "tool_ipi", "tool_ipi.py WebSearch._expand_payloads",
            "\n".join(parts),
            transform=("web_search tool result as garak's WebSearch builds it (preamble, context, payload); "
                       "context: the first half of garak's Hooli report, payload: garak's report injection "
                       f"instruction [{j_i}] carrying the garak request"),
            also=ref)

# Ids: category and a running number; stable as long as sources/ and this script are.
counts = {}
out = []
for it in items:
    counts[it["category"]] = counts.get(it["category"], 0) + 1
    out.append({"id": f"{it['category']}-{counts[it['category']]:03d}", **it})
ids = [o["id"] for o in out]
assert len(ids) == len(set(ids))
prompts = [o["prompt"] for o in out]
dupes = {p for p in prompts if prompts.count(p) > 1}
assert not dupes, dupes
path = HERE / "prompt_injection.jsonl"
path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in out), encoding="utf-8")
by_source = {}
for o in out:
    by_source[o["source"]] = by_source.get(o["source"], 0) + 1
print(f"{len(out)} items -> {path.name}")
for k, v in counts.items():
    print(f"  {k}: {v}")
for k, v in by_source.items():
    print(f"  {v:4}  {k}")
