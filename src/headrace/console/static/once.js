// Forms marked data-submit-once (the bulk replay confirmation) submit once: a double-click or a second
// press while the first request runs does nothing. The server refuses a second use of the token anyway.
"use strict";
(function () {
  for (const form of document.querySelectorAll("form[data-submit-once]")) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.submitted) {
        event.preventDefault();
        return;
      }
      form.dataset.submitted = "1";
      for (const button of form.querySelectorAll("button")) {
        button.disabled = true;
        button.textContent = "Replaying…";
      }
    });
  }
})();
