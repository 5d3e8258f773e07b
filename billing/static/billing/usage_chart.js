// Daily cost chart of the usage page: reads the JSON the page embeds (no inline script, CSP).
(function () {
  const data = document.getElementById("daily-cost-data");
  const canvas = document.getElementById("daily-cost-chart");
  if (!data || !canvas || typeof Chart === "undefined") return;
  const rows = JSON.parse(data.textContent);
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: rows.map((r) => r.day),
      datasets: [{ label: canvas.dataset.label, data: rows.map((r) => Number(r.cost)), backgroundColor: "#0d6efd" }],
    },
    options: { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } } },
  });
})();
