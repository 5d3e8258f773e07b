// Ask before irreversible actions: buttons with data-confirm submit only after the person agrees.
document.addEventListener("click", function (event) {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});
