#!/usr/bin/env bash
# book-browser-check.sh: open the rendered book in a real browser (headless
# Chromium) and check what a reader would see:
#
#   - every chapter listed in book/src/SUMMARY.md loads over HTTP with its
#     title, its content, no failed request and no JavaScript error;
#   - searching for EV_DELETE works: the search index contains it, and the
#     search UI (index.html?search=EV_DELETE) lists results;
#   - screenshots of the introduction and steps 3, 4, 6, 7 and 8 are saved under
#     <target dir>/book-screenshots/ for a person to look at.
#
# Builds the book first (cargo test -p book --test build renders it into
# <target dir>/book). Installs Debian's chromium with apt when it is missing
# (CI runs as root; elsewhere it uses sudo). Honours CARGO_TARGET_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! command -v chromium >/dev/null 2>&1; then
  echo "book-browser-check.sh: installing chromium (Debian package)"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
fi

# Render the book where the tests put it.
cargo test -q -p book --test build >/dev/null
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
book="$target/book"
shots="$target/book-screenshots"
if [ ! -f "$book/index.html" ]; then
  echo "book-browser-check.sh: no $book/index.html after building the book" >&2
  exit 1
fi
mkdir -p "$shots"

exec python3 - "$book" "$shots" "$root/book/src/SUMMARY.md" <<'PY'
"""Drives headless Chromium against the rendered book over HTTP."""
import functools
import glob
import html
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

book, shots, summary = sys.argv[1:4]
DEADLINE = 60  # seconds for any one browser run

failed_requests = []


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the book and remembers every request that failed."""

    def log_message(self, fmt, *args):  # quiet, but keep the failures
        pass

    def send_error(self, code, message=None, explain=None):
        failed_requests.append((code, self.path))
        super().send_error(code, message, explain)


server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(Handler, directory=book))
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d/" % server.server_address[1]
profile = tempfile.mkdtemp(prefix="book-chromium-")


def chromium(*args):
    """Runs one headless Chromium command; returns (stdout, stderr)."""
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-dev-shm-usage", "--no-first-run",
           "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0",
           *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        sys.exit("book-browser-check: chromium ran over %ds: %s"
                 % (DEADLINE, " ".join(args)))
    return out.stdout, out.stderr


def js_errors(stderr):
    """What the page wrote to the console. The book's pages write nothing
    when all is well, and Chromium's log does not say a message's level, so
    every console line counts: uncaught exceptions, console.error, and
    warnings alike."""
    return [l for l in stderr.splitlines() if ":CONSOLE" in l]


problems = []
chapters = re.findall(r"\[([^\]]+)\]\(([^)]+\.md)\)", open(summary).read())
if len(chapters) < 2:
    sys.exit("book-browser-check: SUMMARY.md lists no chapters")

for title, md in chapters:
    page = md[:-3] + ".html"
    before = len(failed_requests)
    problems_before = len(problems)
    dom, err = chromium("--virtual-time-budget=3000", "--dump-dom", base + page)
    want = "<title>%s - " % html.escape(title, quote=False)
    if want not in dom:
        problems.append("%s: no %r in the loaded page" % (page, want))
    main = re.search(r'<main>(.*?)</main>', dom, re.S)
    if not main or len(re.sub(r"<[^>]+>", "", main.group(1)).strip()) < 200:
        problems.append("%s: the page's <main> is (nearly) empty" % page)
    if "{{#" in dom:
        problems.append("%s: a raw {{#...}} directive is on the page" % page)
    for e in js_errors(err):
        problems.append("%s: JavaScript: %s" % (page, e.strip()))
    for code, path in failed_requests[before:]:
        problems.append("%s: request for %s failed with HTTP %d"
                        % (page, path, code))
    print("%-4s %s" % ("ok" if len(problems) == problems_before else "FAIL", page))

# Search: the index holds the word, and the UI finds it.
indexes = glob.glob(os.path.join(book, "searchindex*.js"))
if not indexes:
    problems.append("no searchindex*.js in %s" % book)
elif not any("ev_delete" in open(i).read().lower() for i in indexes):
    problems.append("the search index does not contain EV_DELETE")
dom, err = chromium("--virtual-time-budget=10000", "--dump-dom",
                    base + "index.html?search=EV_DELETE")
header = re.search(r'id="mdbook-searchresults-header"[^>]*>([^<]*)<', dom)
results = re.search(r'<ul id="mdbook-searchresults"[^>]*>(.*?)</ul>', dom, re.S)
# mdBook 0.5 lists each hit as <li><a href="chapter.html#...">...</a>...</li>:
# a result counts only if it links to a chapter page.
hits = re.findall(r'<li[^>]*>\s*<a href="([^"]+\.html[^"]*)"', results.group(1)) \
    if results else []
if not hits:
    problems.append("search for EV_DELETE shows no linked results (header: %r)"
                    % (header.group(1) if header else None))
else:
    print("ok   search: %s (%d listed, first %s)"
          % (header.group(1).strip() if header else "?", len(hits), hits[0]))
for e in js_errors(err):
    problems.append("search page: JavaScript: %s" % e.strip())

# Screenshots for a person to look at.
for name, page in [("introduction", "introduction.html"),
                   ("step3", "step3-the-echo-loop.html"),
                   ("step4", "step4-close-vs-ev-delete.html"),
                   ("step6", "step6-never-block.html"),
                   ("step7", "step7-time-and-signals.html"),
                   ("step8", "step8-at-the-limits.html")]:
    path = os.path.join(shots, name + ".png")
    chromium("--window-size=1280,2000", "--virtual-time-budget=3000",
             "--hide-scrollbars", "--screenshot=" + path, base + page)
    if not os.path.isfile(path) or os.path.getsize(path) < 10000:
        problems.append("screenshot %s was not written" % path)
    else:
        print("ok   screenshot %s" % path)

server.shutdown()
shutil.rmtree(profile, ignore_errors=True)
if problems:
    print("\nbook-browser-check: %d problem(s):" % len(problems), file=sys.stderr)
    for p in problems:
        print("  " + p, file=sys.stderr)
    sys.exit(1)
print("book-browser-check: %d chapters load, search finds EV_DELETE" % len(chapters))
PY
