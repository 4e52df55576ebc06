// Shows the next 3 run times (UTC) of the cron expression as it is typed, from the
// admin's own preview endpoint; the server validates again on save.
(function () {
  "use strict";
  var input = document.getElementById("id_schedule_cron");
  var out = document.getElementById("recsite-cron-preview");
  if (!input || !out) return;
  var row = input.closest(".form-row");
  if (row) row.appendChild(out);  // show it under the field, not after the whole form
  var timer = null;
  function update() {
    var url = out.dataset.url + "?cron=" + encodeURIComponent(input.value);
    fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (!data.ok) { out.textContent = "Invalid: " + data.error; return; }
        out.textContent = data.runs.length ? "Next runs: " + data.runs.join(", ") : "No schedule.";
      });
  }
  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(update, 300);
  });
})();
