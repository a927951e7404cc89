/* PeerGrid's small progressive enhancements; every page works without this file.
 * Countdowns: <time data-countdown datetime="..."> elements show the time left to gate closure,
 * ticking once a second. One timer queries the page each tick, so fragments swapped in by htmx
 * count down without any re-initialisation. */
(function () {
  "use strict";
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function left(ms) {
    var s = Math.floor(ms / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h > 0) { return "gate closes in " + h + " h " + pad(m) + " min"; }
    return "gate closes in " + m + ":" + pad(sec);
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) { return; }
      var ms = at - now;
      if (ms <= 0) {
        el.textContent = "gate closed";
        el.classList.add("closed");
        el.removeAttribute("data-countdown");
      } else {
        el.textContent = left(ms);
        el.classList.toggle("soon", ms < 5 * 60 * 1000);
      }
    });
  }
  tick();
  window.setInterval(tick, 1000);
  // The board refreshes itself while open ([data-board-poll]); never while a member is filling
  // in one of its forms: a field with focus, a changed value or an opened bid form.
  function editing(root) {
    var active = document.activeElement;
    if (active && root.contains(active) && active.closest("form")) { return true; }
    if (root.querySelector("details[open]")) { return true; }
    return Array.prototype.some.call(root.querySelectorAll("input, select, textarea"), function (el) {
      if (el.type === "hidden" || el.type === "submit") { return false; }
      if (el.type === "checkbox" || el.type === "radio") { return el.checked !== el.defaultChecked; }
      if (el.tagName === "SELECT") {
        return Array.prototype.some.call(el.options, function (o) { return o.selected !== o.defaultSelected; });
      }
      return el.value !== el.defaultValue;
    });
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail.elt;
    if (!source) { return; }
    // A page in a background tab does not poll ([data-poll-visible]); here rather than as an
    // htmx trigger filter, which htmx would evaluate as code the Content-Security-Policy refuses.
    if (source.hasAttribute("data-poll-visible") && document.visibilityState !== "visible") {
      event.preventDefault();
      return;
    }
    if (!source.hasAttribute("data-board-poll")) { return; }
    var board = document.getElementById("board-main");
    if (board && editing(board)) { event.preventDefault(); }
  });
  // A refused request htmx does not swap (404, 500): say so instead of failing silently.
  document.addEventListener("htmx:responseError", function (event) {
    var target = document.getElementById("board-main");
    if (!target) { return; }
    var note = document.createElement("p");
    note.className = "notice bad";
    note.setAttribute("role", "alert");
    note.textContent = "That did not work (" + event.detail.xhr.status + "). Reload the page and try again.";
    target.prepend(note);
  });
})();
