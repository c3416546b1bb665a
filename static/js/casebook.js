/* Case-record pages: unsaved-changes warning and live scores. No framework; htmx does the swaps. */
(function () {
  "use strict";

  var dirty = new Set();

  function prune() {
    dirty.forEach(function (form) { if (!document.body.contains(form)) dirty.delete(form); });
  }

  function markDirty(event) {
    var form = event.target.closest && event.target.closest("form[data-warn-unsaved]");
    if (!form || dirty.has(form)) return;
    dirty.add(form);
    var banner = form.querySelector(".unsaved-banner");
    if (banner) banner.classList.add("shown");
  }

  document.addEventListener("input", markDirty);
  document.addEventListener("change", markDirty);
  // Saving is leaving on purpose.
  document.addEventListener("submit", function (event) { dirty.delete(event.target); }, true);
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.target.tagName === "FORM") dirty.delete(event.target);
  });

  window.addEventListener("beforeunload", function (event) {
    prune();
    if (dirty.size) { event.preventDefault(); event.returnValue = ""; }
  });

  // Cancelling an edited form asks first (in place with htmx, or on a full page).
  document.addEventListener("click", function (event) {
    var cancel = event.target.closest && event.target.closest("[data-cancel]");
    if (!cancel) return;
    var form = cancel.closest("form");
    if (form && dirty.has(form)) {
      if (!window.confirm("Discard your unsaved changes?")) {
        event.preventDefault();
        event.stopImmediatePropagation();
        return;
      }
      dirty.delete(form);
    }
  }, true);

  // Live scores: the server computes them with the same code the models use on save.
  var timers = new WeakMap();

  function refreshScores(form) {
    var url = form.getAttribute("data-score-url");
    if (!url) return;
    fetch(url, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) return;
        Object.keys(data).forEach(function (key) {
          form.querySelectorAll('[data-score="' + key + '"]').forEach(function (output) {
            output.textContent = data[key] === null ? "—" : data[key];
          });
        });
      });
  }

  function scheduleScores(event) {
    var form = event.target.closest && event.target.closest("form[data-score-url]");
    if (!form) return;
    clearTimeout(timers.get(form));
    timers.set(form, setTimeout(function () { refreshScores(form); }, 120));
  }

  document.addEventListener("change", scheduleScores);
  document.addEventListener("input", scheduleScores);

  function settle(root) {
    root.querySelectorAll("form[data-score-url]").forEach(refreshScores);
    var saved = root.querySelector(".saved-message");
    if (saved) { saved.focus(); return; }
    var form = root.querySelector("form");
    var first = form && form.querySelector("input:not([type=hidden]), select, textarea");
    if (first) first.focus();
  }

  document.addEventListener("htmx:afterSwap", function (event) { prune(); settle(event.target); });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-score-url]").forEach(refreshScores);
  });
})();
