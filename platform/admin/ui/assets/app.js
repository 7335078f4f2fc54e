// plba admin UI: the only script besides htmx (no inline script: the
// Content-Security-Policy forbids it). It shows times in the browser's
// zone, named, with relative times, selects every dead letter of a page, closes
// confirmations, swaps an HTML answer whatever its status (an action that
// failed midway says what it did), and shows the message of a refused or
// failed request (an action without an answer may have been done).
(function () {
  "use strict";

  function relative(ms) {
    var s = Math.round(ms / 1000), past = s >= 0, a = Math.abs(s), out;
    if (a < 45) out = a + " s";
    else if (a < 45 * 60) out = Math.round(a / 60) + " min";
    else if (a < 36 * 3600) out = Math.round(a / 3600) + " h";
    else out = Math.round(a / 86400) + " d";
    return past ? out + " ago" : "in " + out;
  }

  function times(root) {
    var els = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < els.length; i++) {
      var el = els[i], d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) continue;
      // The zone is named: a local time without it would pass for the
      // UTC the server wrote.
      el.textContent = d.toLocaleString(undefined, { timeZoneName: "short" }) + " (" + relative(Date.now() - d.getTime()) + ")";
      el.title = d.toISOString();
    }
  }

  function flash(msg) {
    var f = document.getElementById("flash");
    if (!f) return;
    f.textContent = msg;
    f.hidden = !msg;
  }

  document.addEventListener("DOMContentLoaded", function () { times(document); });
  document.addEventListener("htmx:load", function (e) { times(e.target); });
  document.addEventListener("htmx:afterSwap", function (e) { times(e.target); });
  document.addEventListener("htmx:beforeRequest", function () { flash(""); });
  function isAction(e) {
    var c = e.detail && e.detail.requestConfig;
    return !!(c && c.verb && String(c.verb).toLowerCase() !== "get");
  }
  var maybeDone = "the action may have been done or not. The audit (Log & audit) says what was done.";

  // The UI's own HTML answer (X-Plba-Ui) is swapped whatever its status:
  // an action that failed midway answers what it did (the UI's errors
  // are text, flashed). A page of another (a proxy's 502 or 504) is not.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var x = e.detail.xhr, ct = x ? x.getResponseHeader("Content-Type") || "" : "";
    if (x && x.status >= 400 && ct.indexOf("text/html") === 0 && x.getResponseHeader("X-Plba-Ui")) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
  document.addEventListener("htmx:responseError", function (e) {
    var x = e.detail.xhr, ct = x ? x.getResponseHeader("Content-Type") || "" : "";
    if (x && ct.indexOf("text/html") === 0 && !x.getResponseHeader("X-Plba-Ui")) {
      var msg = "The admin server's address answered " + x.status + " " + (x.statusText || "") + " with a page not of the admin UI (a proxy's?)";
      flash(isAction(e) && x.status >= 500 ? msg + ": " + maybeDone : msg + ".");
      return;
    }
    flash((x && x.responseText) ? x.responseText : "The request failed.");
  });
  // No answer to an action is no proof it was not done: the server may
  // have acted and the answer been lost on the way.
  document.addEventListener("htmx:sendError", function (e) {
    flash(isAction(e) ? "The admin server did not answer: " + maybeDone : "The admin server did not answer.");
  });

  document.addEventListener("change", function (e) {
    if (e.target && e.target.id === "select-all") {
      var boxes = document.querySelectorAll("#dead-table input[name=ids]");
      for (var i = 0; i < boxes.length; i++) boxes[i].checked = e.target.checked;
    }
  });
  document.addEventListener("click", function (e) {
    var b = e.target && e.target.closest ? e.target.closest("button.cancel") : null;
    if (!b) return;
    var box = b.closest("#confirm");
    if (box) box.innerHTML = "";
    else {
      var c = b.closest(".confirm, .result");
      if (c) c.remove();
    }
  });
})();
