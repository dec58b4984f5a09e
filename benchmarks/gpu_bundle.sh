#!/usr/bin/env bash
# Fill what the GPU check carries to a bare GPU machine, from the repository root:
#   .whl/      wheels of benchmarks/gpu_requirements.txt for Python 3.12 on x86_64 Linux (~4.3 MB)
#   .gpudata/  the real-data files in ../shared/data's layout, gzipped (~42 MB; the readers look through .gz)
# Both are git-ignored through .git/info/exclude. Usage: benchmarks/gpu_bundle.sh [DATA_DIR]
set -euo pipefail
data="${1:-../shared/data}"
for folder in /.whl/ /.gpudata/; do
  grep -qxF "$folder" .git/info/exclude || echo "$folder" >> .git/info/exclude
done
mkdir -p .whl .gpudata/conll2003 .gpudata/sst2 .gpudata/imdb
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  -r <(grep -v -e '^#' -e '^seqeval' benchmarks/gpu_requirements.txt)
python3 -m pip wheel -q --no-deps -w .whl "$(grep '^seqeval' benchmarks/gpu_requirements.txt)"
for f in conll2003/train.txt conll2003/valid.txt conll2003/test.txt sst2/train.tsv sst2/dev.tsv imdb/train.jsonl \
         imdb/test.jsonl; do
  if [ -f "$data/$f" ]; then gzip -9 -c "$data/$f" > ".gpudata/$f.gz"; fi
done
cp "$data/imdb/unsup.jsonl.gz" .gpudata/imdb/
du -sh .whl .gpudata
