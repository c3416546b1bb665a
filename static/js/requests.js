/* Every htmx request of every page: the CSRF token, and a visible message when a request fails.

   The token comes from <meta name="csrf-token"> in base.html and is sent as X-CSRFToken, so a
   button outside a form (hx-post on a <button>) is accepted like a form with {% csrf_token %}.
   A response that is an error (4xx, 5xx) or no response at all is never silent: a message naming
   what went wrong appears next to the element that made the request. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  var STATUS = {
    400: "the request was not accepted",
    403: "not allowed",
    404: "not found",
    405: "not allowed this way",
    409: "someone changed this meanwhile",
    413: "too large",
    429: "too many attempts; wait a moment",
    500: "the server failed",
    502: "the server is unreachable",
    503: "the server is unavailable",
  };

  // The server's own words: the first paragraph of the main content of an error page, or the text.
  function serverReason(xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    var body = xhr.responseText || "";
    if (type.indexOf("html") === -1) return body.trim().slice(0, 300);
    var doc = new DOMParser().parseFromString(body, "text/html");
    var node = doc.querySelector("[data-error-reason]") || doc.querySelector("main p, #summary p, p");
    return node ? node.textContent.replace(/\s+/g, " ").trim().slice(0, 300) : "";
  }

  function show(elt, text) {
    var anchor = (elt && elt.closest && (elt.closest("form") || elt)) || document.getElementById("content");
    var box = anchor.previousElementSibling;
    if (!box || !box.classList || !box.classList.contains("request-error")) {
      box = document.createElement("p");
      box.className = "messages error-message request-error";
      box.setAttribute("role", "alert");
      anchor.parentNode.insertBefore(box, anchor);
    }
    box.textContent = text;
  }

  // A report figure whose drawing request failed no longer says it is being drawn.
  function giveUpFigure(elt) {
    if (elt && elt.classList && elt.classList.contains("figure-pending")) {
      elt.textContent = "The figure is not shown: reload the page to try again.";
    }
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var label = STATUS[xhr.status] || "error";
    var reason = serverReason(xhr);
    show(event.detail.elt, "Not done (" + xhr.status + ", " + label + ")" + (reason ? ": " + reason : ".") + " Nothing was changed.");
    giveUpFigure(event.detail.elt);
  });

  document.addEventListener("htmx:sendError", function (event) {
    show(event.detail.elt, "Not done: the server could not be reached. Nothing was changed; try again.");
    giveUpFigure(event.detail.elt);
  });

  // A new request from the same place clears its old message.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var anchor = elt && elt.closest && (elt.closest("form") || elt);
    var box = anchor && anchor.previousElementSibling;
    if (box && box.classList && box.classList.contains("request-error")) box.remove();
  });
})();
