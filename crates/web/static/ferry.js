/* Ferry's own script: only what htmx does not do. Pages work without it. */
(function () {
  "use strict";
  // A live log follows its end while the reader is at the end; scrolling up
  // pauses that, scrolling back down resumes it.
  function follow(log) {
    var stick = true;
    var near = function () { return log.scrollHeight - log.scrollTop - log.clientHeight < 24; };
    log.addEventListener("scroll", function () {
      stick = near();
      log.dataset.following = stick ? "yes" : "no";
    });
    var toEnd = function () { if (stick) { log.scrollTop = log.scrollHeight; } };
    log.addEventListener("htmx:sseBeforeMessage", function () { stick = near() || stick && log.dataset.following !== "no"; });
    log.addEventListener("htmx:afterSettle", toEnd);
    log.addEventListener("htmx:sseMessage", toEnd);
    log.dataset.following = "yes";
    toEnd();
  }
  // The deploy dialog: choosing another environment shows its hosts at
  // once (the form's "show its hosts" button), so the hosts listed are
  // always the chosen environment's.
  function showHosts(select) {
    select.addEventListener("change", function () {
      var button = document.getElementById("show-hosts");
      if (select.form && button) {
        if (select.form.requestSubmit) { select.form.requestSubmit(button); } else { button.click(); }
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-follow]").forEach(follow);
    document.querySelectorAll("select[data-show-hosts]").forEach(showHosts);
  });
  // Live pages (issue: pages show what is true now). The regions marked
  // `data-live` are fetched again, with the page, whenever the server says
  // something changed (`/live`, Server-Sent Events), and swapped in place:
  // no reload, and a region where the reader is typing is left alone. Where
  // the stream cannot be opened the page polls.
  var POLL_MS = 10000;
  function regions() { return document.querySelectorAll("[data-live][id]"); }
  function dirty(el) {
    var a = document.activeElement;
    if (a && el.contains(a) && a.matches("input, select, textarea")) { return true; }
    return Array.prototype.some.call(el.querySelectorAll("input, select, textarea"), function (i) {
      if (i.type === "hidden") { return false; }
      if (i.type === "checkbox" || i.type === "radio") { return i.checked !== i.defaultChecked; }
      if (i.tagName === "SELECT") {
        return Array.prototype.some.call(i.options, function (o) { return o.selected !== o.defaultSelected; });
      }
      return i.value !== i.defaultValue;
    });
  }
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.pathname + window.location.search, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok || r.redirected) { throw new Error("status " + r.status); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        regions().forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (!fresh || dirty(el) || fresh.innerHTML === el.innerHTML) { return; }
          fresh = document.importNode(fresh, true);
          el.replaceWith(fresh);
          if (window.htmx) { window.htmx.process(fresh); }
        });
        document.body.setAttribute("data-live-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  function live() {
    if (!regions().length) { return; }
    var badge = document.getElementById("live-state");
    var show = function (mode) {
      if (!badge) { return; }
      badge.hidden = false;
      badge.className = "live-state " + mode;
      badge.setAttribute("data-mode", mode);
      badge.textContent = mode === "on" ? badge.getAttribute("data-on") : badge.getAttribute("data-poll");
    };
    var timer = null;
    var poll = function () {
      show("poll");
      if (!timer) { timer = setInterval(refresh, POLL_MS); }
    };
    if (!window.EventSource) { poll(); return; }
    var source = new EventSource("/live?page=" + encodeURIComponent(window.location.pathname));
    var opened = false, failures = 0;
    source.addEventListener("open", function () {
      // After a reconnection, catch up on what was missed meanwhile.
      if (opened) { refresh(); }
      opened = true; failures = 0;
      if (timer) { clearInterval(timer); timer = null; }
      show("on");
    });
    source.addEventListener("changed", refresh);
    // Newer pages of this session took the live places: poll.
    source.addEventListener("evicted", function () { source.close(); poll(); });
    source.addEventListener("error", function () {
      failures += 1;
      // Refused (signed out) or blocked: poll.
      if (source.readyState === 2 || failures >= 3) { source.close(); }
      poll();
    });
  }
  document.addEventListener("DOMContentLoaded", live);

  // When a live part says it has ended, the page is loaded again so that
  // everything the end changed (version, buttons) shows.
  document.addEventListener("htmx:sseMessage", function (e) {
    var el = e.target;
    if (el && el.hasAttribute && el.hasAttribute("data-reload-on-end") && e.detail && e.detail.type === "end") {
      setTimeout(function () { window.location.reload(); }, 300);
    }
  });
})();
