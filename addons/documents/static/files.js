// Drag and drop on the file manager's upload form; without this script the form still works.
(function () {
  "use strict";
  function setup(form) {
    var status = form.querySelector(".dropzone-status");
    function say(text) { if (status) { status.textContent = text; } }
    ["dragenter", "dragover"].forEach(function (name) {
      form.addEventListener(name, function (event) {
        event.preventDefault();
        form.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      form.addEventListener(name, function () { form.classList.remove("dragging"); });
    });
    form.addEventListener("drop", function (event) {
      event.preventDefault();
      var dropped = event.dataTransfer && event.dataTransfer.files;
      if (!dropped || !dropped.length) { return; }
      var data = new FormData(form);
      data.delete("file");
      for (var i = 0; i < dropped.length; i++) { data.append("file", dropped[i]); }
      say(form.dataset.uploading);
      fetch(form.action, {method: "POST", body: data, credentials: "same-origin",
                          headers: {"Accept": "application/json"}})
        .then(function (response) {
          return response.json().then(function (body) { return {ok: response.ok, body: body}; });
        })
        .then(function (result) {
          if (result.ok) { window.location.reload(); } else { say(result.body.error || form.dataset.failed); }
        })
        .catch(function () { say(form.dataset.failed); });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-dropzone]").forEach(setup);
  });
})();
