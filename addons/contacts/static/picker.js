// Client fields (the `contacts/_picker.html` macro): suggestions from /contacts/lookup.json
// while typing. Progressive: without this file the server resolves the typed name and asks
// when it is ambiguous.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("input[data-lookup]").forEach((input) => {
    const list = document.getElementById(input.getAttribute("list"));
    const idField = document.getElementById(input.dataset.idField);
    if (!list || !idField) return;
    let timer = null;
    let asked = "";

    function pick() {
      // A suggestion chosen (its name typed exactly) links that contact; any other text is
      // resolved by the server, so the old link must not survive an edit.
      const match = Array.from(list.options).find((o) => o.value === input.value);
      if (match) idField.value = match.dataset.id;
      else if (idField.tagName === "INPUT") idField.value = "";
    }

    async function lookup() {
      const q = input.value.trim();
      if (q.length < 2 || q === asked) return;
      asked = q;
      const url = new URL(input.dataset.lookup, window.location.href);
      url.searchParams.set("q", q);
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        if (!response.ok) return;
        const rows = await response.json();
        list.replaceChildren(...rows.map((row) => {
          const option = document.createElement("option");
          option.value = row.name;
          option.dataset.id = String(row.id);
          if (row.city) option.label = row.name + " (" + row.city + ")";
          return option;
        }));
        pick();
      } catch (error) {
        // No suggestions: the typed name is still resolved when the form is sent.
      }
    }

    input.addEventListener("input", () => {
      pick();
      clearTimeout(timer);
      timer = setTimeout(lookup, 200);
    });
    input.addEventListener("change", pick);
  });
});
