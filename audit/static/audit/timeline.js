// Daily audit events (success / failure) of the filtered set, drawn with the vendored Chart.js.
(function () {
  const canvas = document.getElementById("audit-timeline");
  const source = document.getElementById("audit-timeline-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const days = JSON.parse(source.textContent);
  const labels = document.getElementById("audit-timeline-labels").dataset;
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: days.map((d) => d.day),
      datasets: [
        { label: labels.success, data: days.map((d) => d.success), backgroundColor: "#198754" },
        { label: labels.failure, data: days.map((d) => d.failure), backgroundColor: "#dc3545" },
      ],
    },
    options: { animation: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });
})();
