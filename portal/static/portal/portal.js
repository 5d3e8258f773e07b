// CampusCloud page behaviour that a strict Content-Security-Policy allows: no inline handlers.
//
// One confirmation, in the page's own dialog (#confirm-dialog in base.html), before a destructive
// action is sent: a submit button with data-confirm="..." asks for itself; a form with
// data-confirm asks for every button in it. Nothing else prompts (no window.confirm).
(() => {
  let confirmed = null; // the button whose submission the person has just agreed to

  function ask(message, onYes) {
    const element = document.getElementById("confirm-dialog");
    element.querySelector("[data-confirm-message]").textContent = message;
    const dialog = bootstrap.Modal.getOrCreateInstance(element);
    const ok = element.querySelector("[data-confirm-ok]");
    const yes = () => {
      ok.removeEventListener("click", yes);
      dialog.hide();
      onYes();
    };
    element.addEventListener("hidden.bs.modal", () => ok.removeEventListener("click", yes), { once: true });
    ok.addEventListener("click", yes);
    dialog.show();
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const button = event.submitter || null;
    const message = (button && button.dataset.confirm) || form.dataset.confirm;
    if (!message) return;
    if (confirmed !== null && confirmed === (button || form)) {
      confirmed = null;
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
    ask(message, () => {
      confirmed = button || form;
      if (button) form.requestSubmit(button);
      else form.requestSubmit();
    });
  }, true);
})();
