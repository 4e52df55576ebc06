// Shows the next 3 run times of the cron expression as it is typed, in the schedule's
// time zone and in UTC, from the admin's own preview endpoint; the server validates
// again on save.
(function () {
  "use strict";
  var input = document.getElementById("id_schedule_cron");
  var zone = document.getElementById("id_schedule_timezone");
  var out = document.getElementById("recsite-cron-preview");
  if (!input || !out) return;
  var row = input.closest(".form-row");
  if (row) row.appendChild(out);  // show it under the field, not after the whole form
  var timer = null;
  function update() {
    var url = out.dataset.url + "?cron=" + encodeURIComponent(input.value) +
      "&tz=" + encodeURIComponent(zone ? zone.value : "UTC");
    fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (!data.ok) { out.textContent = "Invalid: " + data.error; return; }
        out.textContent = data.runs.length ? "Next runs: " + data.runs.join(", ") : "No schedule.";
      });
  }
  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(update, 300);
  }
  input.addEventListener("input", later);
  if (zone) zone.addEventListener("change", later);
})();
