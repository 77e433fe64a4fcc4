// Progressive enhancement of the contacts pages; every page works without it.
document.addEventListener("DOMContentLoaded", () => {
  // List: "select all on this page" and the bulk action's own parameter only.
  const all = document.querySelector(".contacts-list .select-all");
  if (all) {
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll('.contacts-list input[name="ids"]')) {
        box.checked = all.checked;
      }
    });
  }
  const action = document.querySelector('#bulk-form select[name="action"]');
  if (action) {
    const show = () => {
      for (const param of document.querySelectorAll(".bulk-param")) {
        param.classList.toggle("shown", param.dataset.action === action.value);
      }
    };
    action.addEventListener("change", show);
    show();
  }
  // Form: suggest existing companies while typing the company's name.
  const company = document.querySelector("input[data-lookup]");
  const options = document.getElementById("company-options");
  if (company && options) {
    let timer = null;
    company.addEventListener("input", () => {
      clearTimeout(timer);
      const q = company.value.trim();
      if (q.length < 2) return;
      timer = setTimeout(async () => {
        const url = `${company.dataset.lookup}?q=${encodeURIComponent(q)}`;
        const response = await fetch(url, { credentials: "same-origin" });
        if (!response.ok) return;
        const rows = await response.json();
        options.replaceChildren(...rows.map((row) => {
          const option = document.createElement("option");
          option.value = row.name;
          return option;
        }));
      }, 200);
    });
  }
});
