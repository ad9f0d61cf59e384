#!/usr/bin/env bash
# book-browser-check.sh: open the rendered book in a real browser (headless
# Chromium) and check what a reader would see:
#
#   - every chapter listed in book/src/SUMMARY.md loads over HTTP with its
#     title, its content, no failed request and no JavaScript error;
#   - searching for EV_DELETE works: the search index contains it, and the
#     search UI (index.html?search=EV_DELETE) lists results;
#   - nothing is clipped, at a desktop's width (1280 px) and a phone's
#     (390 px): no listing, table, figure or paragraph is wider than the
#     window, and no box hides part of its content behind a scrollbar a
#     reader may not see (every <details> opened first, so hints count);
#     the one box allowed to scroll sideways is a figure's own (a box that
#     scrolls, holding a figure and no text of its own), and only when it
#     fits the window itself;
#   - every figure (an SVG image, or an SVG inline with text in it) is
#     readable at both widths: its smallest text renders at 10 px or more
#     (the SVG's font sizes times the scale the page draws it at);
#   - screenshots of every chapter at both widths, whole pages, are saved
#     under <target dir>/book-screenshots/ (NAME-1280.png, NAME-390.png)
#     for a person to look at.
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
import json
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


# Injected into a page asked for with ?kq-measure: opens every <details>,
# then measures, and writes what it found into the page as JSON.
MEASURE = b"""<script>
window.addEventListener('load', function () {
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  setTimeout(function () {
    var vw = document.documentElement.clientWidth;
    var problems = [];
    function describe(el) {
      var img = el.querySelector('img');
      var text = (el.textContent || el.getAttribute('src') || (img && img.getAttribute('src')) || '').replace(/\\s+/g, ' ').trim();
      return el.tagName.toLowerCase() + ' "' + text.slice(0, 70) + '"';
    }
    var main = document.querySelector('main');
    // A figure's own box may scroll sideways: it scrolls (overflow-x auto
    // or scroll), holds an image or an SVG, and no text besides the SVG's.
    function isFigureBox(el) {
      var overflow = getComputedStyle(el).overflowX;
      if (overflow !== 'auto' && overflow !== 'scroll') return false;
      if (!el.querySelector('img, svg')) return false;
      var text = el.textContent;
      el.querySelectorAll('svg').forEach(function (svg) { text = text.replace(svg.textContent, ''); });
      return text.trim() === '';
    }
    function inFigureBox(el) {
      for (var up = el.parentElement; up && up !== main; up = up.parentElement) {
        if (isFigureBox(up)) return true;
      }
      return false;
    }
    var boxes = main.querySelectorAll('pre, pre > code, table, .table-wrapper, img, svg, p, li, blockquote, h1, h2, h3, h4, div, label');
    boxes.forEach(function (el) {
      var r = el.getBoundingClientRect();
      var scrolled = inFigureBox(el);
      if (r.width > 0 && r.right > vw + 1 && !scrolled) {
        problems.push('wider than the ' + vw + ' px window (right edge at ' + Math.round(r.right) + ' px): ' + describe(el));
      }
      if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && !scrolled && !isFigureBox(el)) {
        problems.push('clipped: shows ' + el.clientWidth + ' of its ' + el.scrollWidth + ' px: ' + describe(el));
      }
    });

    // The smallest text of an SVG drawn on the page, in CSS pixels: each
    // text's font size times the scale it is drawn at.
    function smallestText(svg) {
      var least = Infinity;
      svg.querySelectorAll('text, tspan').forEach(function (t) {
        if (!t.textContent.trim()) return;
        var m = t.getScreenCTM();
        if (!m) return;
        var px = parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.c, m.d);
        if (px < least) least = px;
      });
      return least;
    }
    var figures = [];
    var pending = [];
    // Inline SVGs with text (mdBook's icons have none).
    main.querySelectorAll('svg').forEach(function (svg) {
      if (!svg.querySelector('text') || svg.getBoundingClientRect().width === 0) return;
      var title = svg.querySelector('title');
      var r = svg.getBoundingClientRect();
      figures.push({ figure: 'inline svg "' + (title ? title.textContent : '').slice(0, 50) + '"',
                     width: Math.round(r.width), px: smallestText(svg) });
    });
    // SVG images: the text is inside the file, so the file is drawn again,
    // out of sight, at the size the page gives the image.
    main.querySelectorAll('img').forEach(function (img) {
      var src = img.getAttribute('src') || '';
      var r = img.getBoundingClientRect();
      if (!/\\.svg(\\?|#|$)/.test(src) || r.width === 0) return;  // (mdBook's hidden zoomed copy)
      pending.push(fetch(img.src).then(function (response) { return response.text(); }).then(function (text) {
        var svg = new DOMParser().parseFromString(text, 'image/svg+xml').documentElement;
        var stage = document.createElement('div');
        stage.style.cssText = 'position:absolute;left:-20000px;top:0;width:' + r.width + 'px;height:' + r.height + 'px';
        svg.style.cssText = 'display:block;width:' + r.width + 'px;height:' + r.height + 'px';
        stage.appendChild(document.importNode(svg, true));
        document.body.appendChild(stage);
        figures.push({ figure: src, width: Math.round(r.width), px: smallestText(stage.firstChild) });
        document.body.removeChild(stage);
      }).catch(function (e) {
        problems.push('figure ' + src + ': could not be measured: ' + e);
      }));
    });
    Promise.all(pending).then(function () {
      figures.forEach(function (f) {
        // (A hundredth of a pixel is allowed for rounding.)
        if (!(f.px >= 9.99)) {
          problems.push('figure ' + f.figure + ' is drawn ' + f.width + ' px wide: its smallest text renders at ' +
                        (isFinite(f.px) ? f.px.toFixed(2) : 'no size') + ' px, below 10 px');
        }
        f.px = isFinite(f.px) ? Math.round(f.px * 10) / 10 : -1;
      });
      var report = document.createElement('pre');
      report.id = 'kq-measure';
      report.textContent = JSON.stringify({
        width: vw,
        height: document.documentElement.scrollHeight,
        problems: problems,
        figures: figures
      });
      document.body.appendChild(report);
    });
  }, 300);
});
</script>"""


# A page shown at a given width: Chromium will not make a window narrower
# than 500 px, so a phone's width is an <iframe> of that width. The frame
# copies the page's measurement out (same origin), and takes the page's
# whole height when asked to (for a screenshot of all of it).
FRAME = """<!DOCTYPE html>
<html><body style="margin:0;background:#888">
<iframe id="page" src="%(page)s?kq-measure" scrolling="no"
  style="display:block;border:0;background:#fff;width:%(width)dpx;height:%(height)dpx"></iframe>
<script>
var frame = document.getElementById('page');
(function poll() {
  try {
    var report = frame.contentDocument.getElementById('kq-measure');
    if (report) {
      var out = document.createElement('pre');
      out.id = 'kq-measure';
      out.textContent = report.textContent;
      document.body.appendChild(out);
      return;
    }
  } catch (e) {}
  setTimeout(poll, 100);
})();
</script>
</body></html>"""


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the book and remembers every request that failed; a page
    asked for with ?kq-measure gets the MEASURE script."""

    def log_message(self, fmt, *args):  # quiet, but keep the failures
        pass

    def send_error(self, code, message=None, explain=None):
        failed_requests.append((code, self.path))
        super().send_error(code, message, explain)

    def do_GET(self):
        if self.path.startswith("/kq-frame?"):
            query = dict(p.split("=", 1) for p in self.path.split("?", 1)[1].split("&"))
            page = (FRAME % {"page": query["page"], "width": int(query["width"]),
                             "height": int(query.get("height", 900))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if "kq-measure" not in self.path:
            return super().do_GET()
        path = self.translate_path(self.path.split("?")[0])
        try:
            page = open(path, "rb").read()
        except OSError:
            return self.send_error(404)
        page = page.replace(b"</body>", MEASURE + b"</body>")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


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

# Nothing clipped, at a desktop's width and a phone's; a whole-page
# screenshot of every chapter at each, for a person to look at.
WIDTHS = [1280, 390]
figures = []  # (page, width, figure, drawn width, smallest text in px)
for title, md in chapters:
    page = md[:-3] + ".html"
    name = md[:-3]
    for width in WIDTHS:
        frame = "%skq-frame?page=%s&width=%d" % (base, page, width)
        dom, err = chromium("--window-size=%d,900" % max(width, 500),
                            "--virtual-time-budget=5000", "--dump-dom", frame)
        found = re.search(r'<pre id="kq-measure">(.*?)</pre>', dom, re.S)
        if not found:
            problems.append("%s at %d px: the measuring script reported nothing"
                            % (page, width))
            continue
        report = json.loads(html.unescape(found.group(1)))
        for p in report["problems"]:
            problems.append("%s at %d px: %s" % (page, width, p))
        for f in report.get("figures", []):
            figures.append((page, width, f["figure"], f["width"], f["px"]))
        path = os.path.join(shots, "%s-%d.png" % (name, width))
        height = min(max(int(report["height"]), 600), 30000)
        chromium("--window-size=%d,%d" % (max(width, 500), height),
                 "--virtual-time-budget=5000", "--hide-scrollbars",
                 "--screenshot=" + path, "%s&height=%d" % (frame, height))
        if not os.path.isfile(path) or os.path.getsize(path) < 10000:
            problems.append("screenshot %s was not written" % path)
    print("%-4s %s: nothing clipped, figures readable, at %s px" % (
        "ok" if not any(p.startswith(page + " at") for p in problems) else "FAIL",
        page, " and ".join(str(w) for w in WIDTHS)))
print("ok   screenshots in %s" % shots)
for width in WIDTHS:
    drawn = [f for f in figures if f[1] == width]
    if drawn:
        least = min(drawn, key=lambda f: f[4])
        print("%-4s figures at %d px: %d measured, smallest text %.1f px (%s, drawn %d px wide)"
              % ("ok" if least[4] >= 9.99 else "FAIL", width, len(drawn), least[4], least[2], least[3]))
if not figures:
    problems.append("no figure was measured: the measuring script found no SVG")

server.shutdown()
shutil.rmtree(profile, ignore_errors=True)
if problems:
    print("\nbook-browser-check: %d problem(s):" % len(problems), file=sys.stderr)
    for p in problems:
        print("  " + p, file=sys.stderr)
    sys.exit(1)
print("book-browser-check: %d chapters load, search finds EV_DELETE, nothing is clipped and "
      "every figure's text is 10 px or more at %s px"
      % (len(chapters), " or ".join(str(w) for w in WIDTHS)))
PY
