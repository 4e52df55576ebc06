// The run page polls its JSON endpoint while the run is queued or running, updates the
// phase, the progress bar and the log, and reloads once the run has finished (so the
// metrics, gates and decision appear). No library.
(function () {
  "use strict";
  var root = document.getElementById("recsite-run-progress");
  if (!root || root.dataset.live !== "true") return;
  var url = root.dataset.url;
  var bar = document.getElementById("recsite-progress-bar");
  var label = document.getElementById("recsite-progress-label");
  var log = document.getElementById("recsite-log");
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (run) {
        if (!run.live) { window.location.reload(); return; }
        var percent = Math.round(run.progress * 100);
        bar.value = run.progress;
        label.textContent = run.status + " · " + (run.phase || "waiting for a worker") + " · " +
          percent + "%" + (run.cancel_requested ? " · cancel requested" : "");
        if (log) { log.textContent = run.log_tail; log.scrollTop = log.scrollHeight; }
        window.setTimeout(poll, 1500);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();
