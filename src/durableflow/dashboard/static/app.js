// durableflow dashboard: live refresh of each page's live part, actions with confirmation.
// No framework, no build step. Everything inserted comes from the server's escaped HTML.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="durableflow-csrf"]').content;
  var POLL_MS = 2000;

  function flash(text, bad) {
    var box = document.getElementById("flash");
    box.textContent = text;
    box.className = "flash" + (bad ? " bad" : "");
    box.hidden = false;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-DurableFlow-CSRF": csrf },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().then(function (data) {
        if (!r.ok) { throw new Error(data.error || ("HTTP " + r.status)); }
        return data;
      });
    });
  }

  // Live part: re-fetched every POLL_MS (longer if rendering it takes long), paused while
  // the tab is hidden or the user selects text in it.
  var live = document.getElementById("live");
  function refresh() {
    if (!live) { return; }
    var selection = window.getSelection && String(window.getSelection());
    if (document.hidden || selection) { setTimeout(refresh, POLL_MS); return; }
    var began = Date.now();
    fetch(live.getAttribute("data-live"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) { live.innerHTML = html; }
      })
      .catch(function () {})
      .then(function () {
        var took = Date.now() - began;
        setTimeout(refresh, Math.max(POLL_MS - took, Math.min(took * 2, 10000), 250));
      });
  }
  if (live) { setTimeout(refresh, POLL_MS); }

  // Per-workflow actions (delegated: the buttons are in the live part, re-rendered).
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-action]");
    if (!button) { return; }
    var action = button.getAttribute("data-action");
    var wid = button.parentElement.getAttribute("data-workflow-id");
    if (!window.confirm(action.charAt(0).toUpperCase() + action.slice(1) + " workflow " + wid + "?")) { return; }
    post("/api/workflows/" + encodeURIComponent(wid) + "/" + action).then(function (data) {
      if (action === "delete") { window.location = "/workflows"; return; }
      flash(data.message || (action + ": " + data.status), action === "resume" && !data.workers);
    }, function (err) { flash(err.message, true); });
  });

  // Bulk actions on the list's filter: count first (dry run), confirm, then progress.
  function filterBody() {
    var form = document.getElementById("filters");
    var body = { status: [] };
    new FormData(form).forEach(function (value, key) {
      if (key === "status") { body.status.push(value); } else if (value) { body[key] = value; }
    });
    return body;
  }
  document.querySelectorAll("[data-bulk]").forEach(function (button) {
    button.addEventListener("click", function () {
      var action = button.getAttribute("data-bulk");
      var out = document.getElementById("bulk-status");
      var body = filterBody();
      body.dry_run = true;
      post("/api/bulk/" + action, body).then(function (dry) {
        out.textContent = action + " would affect " + dry.count + " workflow(s)";
        out.setAttribute("data-count", dry.count);
        if (!dry.count) { return; }
        if (!window.confirm(action + " " + dry.count + " workflow(s)?")) { return; }
        body.dry_run = false;
        return post("/api/bulk/" + action, body).then(function (job) { follow(job, out); });
      }).catch(function (err) { out.textContent = err.message; });
    });
  });
  function follow(job, out) {
    fetch("/api/bulk/jobs/" + job.job, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (state) {
        var failed = Object.keys(state.failed).length;
        out.textContent = state.action + ": " + state.done + " of " + state.count + " done" +
          (failed ? ", " + failed + " failed" : "") + (state.finished ? "." : "…");
        out.setAttribute("data-finished", state.finished ? "1" : "0");
        if (!state.finished) { setTimeout(function () { follow(job, out); }, 500); }
      });
  }

  // Schedules: pause / resume.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-schedule-action]");
    if (!button) { return; }
    var name = button.getAttribute("data-name");
    var action = button.getAttribute("data-schedule-action");
    if (!window.confirm(action + " schedule " + name + "?")) { return; }
    post("/api/schedules/" + encodeURIComponent(name) + "/" + action).then(function () {
      flash("schedule " + name + ": " + action + "d");
    }, function (err) { flash(err.message, true); });
  });
})();
