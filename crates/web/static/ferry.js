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
  // When a live part says it has ended, the page is loaded again so that
  // everything the end changed (version, buttons) shows.
  document.addEventListener("htmx:sseMessage", function (e) {
    var el = e.target;
    if (el && el.hasAttribute && el.hasAttribute("data-reload-on-end") && e.detail && e.detail.type === "end") {
      setTimeout(function () { window.location.reload(); }, 300);
    }
  });
})();
