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


  // Date pickers: a "Today"/"Now" button beside each, and the chosen date spelled out (no
  // day/month ambiguity whatever the browser's locale). The server parses the ISO value as before.
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

  function pad(n) { return n < 10 ? "0" + n : "" + n; }

  function spelled(input) {
    var value = input.value;
    if (!value) return "";
    var parts = value.split("T");
    var ymd = parts[0].split("-").map(Number);
    var day = new Date(ymd[0], ymd[1] - 1, ymd[2]);
    var text = DAYS[day.getDay()] + " " + ymd[2] + " " + MONTHS[ymd[1] - 1] + " " + ymd[0];
    return parts[1] ? text + ", " + parts[1].slice(0, 5) : text;
  }

  function enhanceDates(root) {
    root.querySelectorAll("input[data-date-input]:not([data-enhanced])").forEach(function (input) {
      input.setAttribute("data-enhanced", "");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary today";
      var withTime = input.type === "datetime-local";
      button.textContent = withTime ? "Now" : "Today";
      button.setAttribute("aria-label", (withTime ? "Now: " : "Today: ") + (input.labels && input.labels[0] ? input.labels[0].textContent.replace("*", "").trim() : input.name));
      var echo = document.createElement("span");
      echo.className = "date-echo small muted";
      echo.setAttribute("aria-live", "polite");
      echo.textContent = spelled(input);
      button.addEventListener("click", function () {
        var now = new Date();
        var date = now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate());
        input.value = withTime ? date + "T" + pad(now.getHours()) + ":" + pad(now.getMinutes()) : date;
        input.dispatchEvent(new Event("input", { bubbles: true }));
        input.dispatchEvent(new Event("change", { bubbles: true }));
      });
      input.addEventListener("input", function () { echo.textContent = spelled(input); });
      input.addEventListener("change", function () { echo.textContent = spelled(input); });
      var wrap = document.createElement("span");
      wrap.className = "date-picker";
      input.parentNode.insertBefore(wrap, input);
      wrap.appendChild(input);
      wrap.appendChild(button);
      wrap.appendChild(echo);
    });
  }

  // Branching: a field marked data-applies-field is shown (and sent) only while the field it depends
  // on has one of data-applies-values; registry/branching.py declares both the rule and its message.
  function branchTarget(input) {
    return input.closest(".field") || input.closest("td") || input;
  }

  function applyBranching(root) {
    root.querySelectorAll("[data-applies-field]").forEach(function (input) {
      var prefix = input.name.slice(0, input.name.length - input.getAttribute("data-applies-name").length);
      var form = input.form || root;
      var controller = form.querySelector('[name="' + prefix + input.getAttribute("data-applies-field") + '"]');
      if (!controller) return;
      var wanted = input.getAttribute("data-applies-values").split(" ");
      var shown = wanted.indexOf(controller.value) !== -1;
      var target = branchTarget(input);
      target.hidden = !shown;
      // A hidden field is not sent, so a value typed before the choice changed is not kept.
      input.disabled = !shown;
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.form) applyBranching(event.target.form);
  });

  // Missing-data codes: while a code says why a field is empty, the field itself is disabled (and so
  // not sent); registry/missing.py refuses a record that has both.
  function applyMissingCodes(root) {
    root.querySelectorAll("select[data-missing-code]").forEach(function (select) {
      var form = select.form || root;
      var input = form.querySelector('[name="' + select.name.replace(/__missing$/, "") + '"]');
      if (input) input.disabled = !!select.value;
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-missing-code]") && event.target.form) {
      applyMissingCodes(event.target.form);
    }
  });

  function enhance(root) { enhanceDates(root); applyBranching(root); applyMissingCodes(root); }

  function settle(root) {
    enhance(root);
    root.querySelectorAll("form[data-score-url]").forEach(refreshScores);
    var saved = root.querySelector(".saved-message");
    if (saved) { saved.focus(); return; }
    var form = root.querySelector("form");
    var first = form && form.querySelector("input:not([type=hidden]), select, textarea");
    if (first) first.focus();
  }

  document.addEventListener("htmx:afterSwap", function (event) { prune(); settle(event.target); });
  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    document.querySelectorAll("form[data-score-url]").forEach(refreshScores);
  });
})();
