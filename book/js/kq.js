// The book's own additions to mdBook's scripts (book.toml, additional-js),
// with book/css/kq.css: tables as cards on a phone, and figures that
// scroll instead of shrinking past reading.

// On a phone, a table of three columns or more is shown as one card per
// row, each cell under its column's name. Here each cell learns its
// column's name (data-label), and such tables get a class.
(function () {
    document.querySelectorAll("main table").forEach(function (table) {
        var names = Array.prototype.map.call(
            table.querySelectorAll("thead th"),
            function (th) { return th.textContent.trim(); }
        );
        if (names.length < 3) {
            return;
        }
        table.classList.add("kq-cards");
        table.querySelectorAll("tbody tr").forEach(function (row) {
            Array.prototype.forEach.call(row.children, function (cell, i) {
                if (names[i]) {
                    cell.setAttribute("data-label", names[i]);
                }
            });
        });
    });
})();

// A figure (an SVG image, or the inline plot) shrinks with the column only
// as long as its smallest text stays at MIN_TEXT px or more; below that it
// keeps that width, in a box of its own that scrolls sideways
// (book/css/kq.css). The smallest text is the least `font-size` attribute
// in the SVG, which for an image means reading the file (from the cache:
// the image is loaded already); scripts/book-browser-check.sh measures
// the text as drawn.
(function () {
    var MIN_TEXT = 10.5;
    function smallest(sizes) {
        var least = Infinity;
        sizes.forEach(function (s) {
            var px = parseFloat(s);
            if (px > 0 && px < least) {
                least = px;
            }
        });
        return least;
    }
    function fit(figure, box, width, font) {
        if (width > 0 && isFinite(font)) {
            figure.style.minWidth = Math.ceil((width * MIN_TEXT) / font) + "px";
            box.classList.add("kq-figure");
        }
    }
    document.querySelectorAll("main img").forEach(function (img) {
        var src = img.getAttribute("src") || "";
        // mdBook wraps each image in a label (tap to zoom) that also holds
        // a hidden zoomed copy; the label, or the paragraph, is the box.
        if (!/\.svg([?#]|$)/.test(src) || img.parentElement.classList.contains("img-wrapper")) {
            return;
        }
        var box = img.parentElement;
        fetch(img.src)
            .then(function (response) { return response.text(); })
            .then(function (svg) {
                var sizes = (svg.match(/font-size="[0-9.]+"/g) || []).map(function (a) {
                    return a.slice(11, -1);
                });
                var own = function () { fit(img, box, img.naturalWidth, smallest(sizes)); };
                if (img.complete) {
                    own();
                } else {
                    img.addEventListener("load", own);
                }
            })
            .catch(function () {}); // then it just shrinks
    });
    document.querySelectorAll("main svg").forEach(function (svg) {
        var view = svg.viewBox && svg.viewBox.baseVal;
        if (!svg.querySelector("text") || !view || !view.width) {
            return; // an icon, not a figure
        }
        var sizes = Array.prototype.map.call(svg.querySelectorAll("[font-size]"), function (el) {
            return el.getAttribute("font-size");
        });
        var box = document.createElement("div");
        svg.parentNode.insertBefore(box, svg);
        box.appendChild(svg);
        fit(svg, box, view.width, smallest(sizes));
    });
})();
