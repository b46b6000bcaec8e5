#!/bin/sh
# Record every question's components and search scores once per set, then the tables
# of docs/retrieval-experiments.md ("Query-performance signals…") offline. From the repository root:
#   E=/path/to/data/eval sh benchmarks/confidence_signals/run.sh
set -e
: "${E:?set E to the folder holding emanual/ and mtrag_dev/}"
export DUMPS=${DUMPS:-qpp_dumps} E
mkdir -p "$DUMPS"
here=benchmarks/confidence_signals
[ -s "$DUMPS/sample.jsonl" ] || python $here/dump.py helpdesk_bot/sample_data/help_center.json helpdesk_bot/sample_data/questions.jsonl "$DUMPS/sample.jsonl"
[ -s "$DUMPS/holdout.jsonl" ] || python $here/dump.py "$E/emanual/holdout_kb.jsonl" "$E/emanual/holdout_questions.jsonl" "$DUMPS/holdout.jsonl"
[ -s "$DUMPS/clapnq.jsonl" ] || python $here/dump.py "$E/mtrag_dev/clapnq/kb.jsonl" "$E/mtrag_dev/clapnq/questions.jsonl" "$DUMPS/clapnq.jsonl"
[ -s "$DUMPS/fiqa.jsonl" ] || python $here/dump.py "$E/mtrag_dev/fiqa/kb.jsonl" "$E/mtrag_dev/fiqa/questions.jsonl" "$DUMPS/fiqa.jsonl"
cd $here && PYTHONPATH=../..:$PYTHONPATH DUMPS=../../$DUMPS python tables.py && PYTHONPATH=../..:$PYTHONPATH DUMPS=../../$DUMPS python loso.py \
  && PYTHONPATH=../..:$PYTHONPATH DUMPS=../../$DUMPS python boot.py
cd ../.. && [ -s "$DUMPS/holdout.draftsim.json" ] || python $here/draftsim.py sample clapnq fiqa holdout
cd $here && PYTHONPATH=../..:$PYTHONPATH DUMPS=../../$DUMPS python dsim2.py
