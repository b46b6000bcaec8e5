"""MaxSim of the question with the draft as sent (lead-in and markers removed), per question: dumps/<set>.draftsim.json"""
import json, re, sys, os
import numpy as np
from helpdesk_bot.embedding import make_embedder
from helpdesk_bot.settings import Settings
from helpdesk_bot.retrieval import maxsim
from helpdesk_bot.groundedness import without_lead_in
emb = make_embedder(Settings.from_env(require_webhook_secret=False))
d = os.environ.get("DUMPS", "qpp_dumps")
for name in sys.argv[1:]:
    out = {}
    for line in open(f"{d}/{name}.jsonl"):
        r = json.loads(line)
        if r["declined"] or not r["draft"].strip():
            continue
        body = re.sub(r"\[\d+\]", "", without_lead_in(r["draft"])).strip() or r["draft"]
        q, b = emb.token_vectors([r["search_query"], body])
        out[r["id"]] = [maxsim(q, b), maxsim(b, q)]
    json.dump(out, open(f"{d}/{name}.draftsim.json", "w"))
    print(name, len(out), flush=True)
