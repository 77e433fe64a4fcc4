// The deal form's Lost fields, shown once a Lost stage is chosen. Progressive: without this
// file the lost reason appears once a Lost stage was submitted.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".deal-fields[data-lost-stages]").forEach((grid) => {
    const lost = grid.dataset.lostStages.split(" ").filter(Boolean);
    const stage = grid.querySelector("select[name=stage_id]");
    if (!stage) return;
    const toggle = () => {
      grid.querySelectorAll(".lost-only").forEach((el) => {
        el.hidden = !lost.includes(stage.value);
      });
    };
    stage.addEventListener("change", toggle);
  });
});
