// CampusCloud page behaviour that a strict Content-Security-Policy allows: no inline handlers.
// <form data-confirm="...">: ask before a destructive action is sent.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);
