// The book's own addition to mdBook's scripts (book.toml, additional-js):
// on a phone, a table of three columns or more is shown as one card per
// row, each cell under its column's name (book/css/kq.css). Here each cell
// learns its column's name (data-label), and such tables get a class.
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
