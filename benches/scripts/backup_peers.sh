#!/usr/bin/env bash
# Cellar commit vs restic backup vs borg create vs git add+commit on one synthetic source tree,
# side by side in one run (issue 10 item 6). Prints wall time, MB/s, bytes stored, and the
# bytes an incremental commit (after editing 1 % of the files) adds.
#
#   CELLAR=target/release/cellar bash benches/scripts/backup_peers.sh [WORKDIR]
#   FILES=20000 TOTAL_MIB=1100 (defaults: issue 10's ≥ 20,000 files, ≥ 1 GiB; the sizes drawn
#   for 20,000 files add up to about 3.7 GiB, TOTAL_MIB being only a floor: gen_tree.py)
#   TOOLS="cellar cellar-j1 restic borg git" (default): cellar-j1 is cellar commit -j 1, every
#   blob encoded on the reading thread, beside the default of one blob worker per core (FS-16)
# Installs restic and borgbackup from Debian if absent. Everything lives under WORKDIR
# (default: a new temporary directory, deleted at the end). Page cache: each tool reads the
# tree right after the previous one, so all but the first read it warm; the script reads the
# tree once before the first tool so every tool starts warm.
set -euo pipefail
CELLAR=${CELLAR:-target/release/cellar}
CELLAR=$(realpath "$CELLAR")
FILES=${FILES:-20000}
TOTAL_MIB=${TOTAL_MIB:-1100}
HERE=$(cd "$(dirname "$0")" && pwd)
if ! command -v restic >/dev/null || ! command -v borg >/dev/null; then
  apt-get update -qq && apt-get install -y -qq restic borgbackup >/dev/null
fi
W=${1:-$(mktemp -d)}
mkdir -p "$W"
[ -n "${1:-}" ] || trap 'rm -rf "$W"' EXIT
SRC=$W/src
rm -rf "$W"/repo-*
# A tree generated with the same arguments and not yet edited (marker) is reused: generating
# 20,000 files takes about 10 minutes of Python.
MARK="$W/src.pristine.$FILES.$TOTAL_MIB"
if [ ! -e "$MARK" ]; then
  rm -rf "$SRC" "$W"/src.pristine.*
  python3 "$HERE/gen_tree.py" create "$SRC" --files "$FILES" --total-mib "$TOTAL_MIB"
  touch "$MARK"
fi
SRC_BYTES=$(du -sb "$SRC" | cut -f1)
find "$SRC" -type f -exec cat {} + >/dev/null
export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b

init() {
  case $1 in
    cellar*) "$CELLAR" init "$W/repo-$1" >/dev/null ;;
    restic) restic init --repo "$W/repo-restic" >/dev/null ;;
    borg) borg init -e repokey "$W/repo-borg" >/dev/null 2>&1 ;;
    git) git init -q --bare "$W/repo-git" ;;
  esac
}
commit() { # TOOL NAME
  case $1 in
    cellar) "$CELLAR" commit -r "$W/repo-cellar" -m "$2" "$SRC" >/dev/null ;;
    cellar-j1) "$CELLAR" commit -j 1 -r "$W/repo-cellar-j1" -m "$2" "$SRC" >/dev/null ;;
    restic) restic backup --repo "$W/repo-restic" -q "$SRC" >/dev/null ;;
    borg) borg create "$W/repo-borg::$2" "$SRC" ;;
    git) git --git-dir="$W/repo-git" --work-tree="$SRC" add -A &&
         git --git-dir="$W/repo-git" --work-tree="$SRC" commit -q -m "$2" ;;
  esac
}
now() { date +%s.%N; }
declare -A T1 S1 T2 S2
TOOLS=${TOOLS:-"cellar cellar-j1 restic borg git"}
for t in $TOOLS; do
  init "$t"
  a=$(now); commit "$t" one; b=$(now)
  sync; T1[$t]=$(echo "$b - $a" | awk '{print $1 - $3}'); S1[$t]=$(du -sb "$W/repo-$t" | cut -f1)
done
rm -f "$MARK"
python3 "$HERE/gen_tree.py" edit "$SRC"
for t in $TOOLS; do
  a=$(now); commit "$t" two; b=$(now)
  sync; T2[$t]=$(echo "$b - $a" | awk '{print $1 - $3}'); S2[$t]=$(du -sb "$W/repo-$t" | cut -f1)
done
echo "source: $FILES files, $SRC_BYTES bytes; fdatasync: see docs/benchmarks.md"
printf '%-9s %12s %10s %14s | %12s %14s\n' tool "first (s)" "MB/s" "stored (B)" "incr (s)" "added (B)"
for t in $TOOLS; do
  awk -v t="$t" -v t1="${T1[$t]}" -v s1="${S1[$t]}" -v t2="${T2[$t]}" -v s2="${S2[$t]}" -v src="$SRC_BYTES" \
    'BEGIN { printf "%-9s %12.2f %10.1f %14.0f | %12.2f %14.0f\n", t, t1, src / t1 / 1e6, s1, t2, s2 - s1 }'
done
