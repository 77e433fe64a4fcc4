// Kanban drag and drop (HTML5 API + fetch). Progressive: without this file every card keeps
// its small move form. The CSRF token travels in X-CSRFToken; a 409 (someone changed the deal
// meanwhile) or a 422 (e.g. Lost without a reason, Won without an amount) is shown to the user
// and the card returns. Lost asks for the reason and Won (for a deal with no amount) for the
// amount in a dialog before the move is sent.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const board = document.getElementById("board");
  if (!board) return;
  const status = document.getElementById("board-status");
  const dialog = document.getElementById("lost-dialog");
  const lostForm = document.getElementById("lost-form");
  const wonDialog = document.getElementById("won-dialog");
  const wonForm = document.getElementById("won-form");
  let dragged = null;

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function moveUrl(dealId) {
    return board.dataset.moveUrl.replace(/\/0\/move$/, "/" + dealId + "/move");
  }

  function askReason(card) {
    // Resolves with {lost_reason_id, lost_note} or null when cancelled.
    return new Promise((resolve) => {
      if (!dialog || typeof dialog.showModal !== "function") { resolve(null); return; }
      lostForm.reset();
      const title = card.querySelector(".deal-title");
      dialog.querySelector(".lost-deal-title").textContent = title ? title.textContent : "";
      const onClose = () => {
        dialog.removeEventListener("close", onClose);
        const reason = lostForm.elements.lost_reason_id.value;
        if (dialog.returnValue === "ok" && reason) {
          resolve({lost_reason_id: reason, lost_note: lostForm.elements.lost_note.value});
        } else {
          resolve(null);
        }
      };
      dialog.addEventListener("close", onClose);
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  function askAmount(card) {
    // Won needs an amount when the deal has none: resolves with {amount} or null (cancelled).
    return new Promise((resolve) => {
      if (!wonDialog || typeof wonDialog.showModal !== "function") { resolve(null); return; }
      wonForm.reset();
      const title = card.querySelector(".deal-title");
      wonDialog.querySelector(".won-deal-title").textContent = title ? title.textContent : "";
      const onClose = () => {
        wonDialog.removeEventListener("close", onClose);
        const amount = wonForm.elements.amount.value.trim();
        resolve(wonDialog.returnValue === "ok" && amount ? {amount} : null);
      };
      wonDialog.addEventListener("close", onClose);
      wonDialog.returnValue = "";
      wonDialog.showModal();
    });
  }

  function updateCount(column, delta) {
    const count = column.querySelector(".column-count");
    if (!count) return;
    const value = parseInt(count.textContent.replace(/\D/g, ""), 10);
    if (!Number.isNaN(value)) count.textContent = String(Math.max(value + delta, 0));
  }

  // The sums per currency are formatted by the server for the reader's locale: after a move,
  // ask it for every column's count and sums (with the board's filters) and put them in place.
  async function refreshSums() {
    if (!board.dataset.sumsUrl) return;
    let data;
    try {
      const response = await fetch(board.dataset.sumsUrl, {
        credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (!response.ok) return;
      data = await response.json();
    } catch (e) { return; }
    for (const column of board.querySelectorAll(".board-column")) {
      const fresh = data.columns && data.columns[column.dataset.stage];
      if (!fresh) continue;
      const count = column.querySelector(".column-count");
      if (count) count.textContent = fresh.count;
      const sums = column.querySelector(".column-sums");
      if (sums) sums.innerHTML = fresh.sums;
    }
  }

  async function send(card, stageId, extra) {
    const body = Object.assign({stage_id: Number(stageId), version: Number(card.dataset.version)},
                               extra || {});
    const response = await fetch(moveUrl(card.dataset.deal), {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "X-CSRFToken": board.dataset.csrf},
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    return {ok: response.ok && data.ok, status: response.status, data};
  }

  async function drop(card, targetList) {
    const fromList = card.parentElement;
    const fromColumn = fromList.closest(".board-column");
    const toColumn = targetList.closest(".board-column");
    if (fromList === targetList) return;
    let extra = {};
    if (toColumn.dataset.kind === "lost") {
      const answer = await askReason(card);
      if (!answer) return;
      extra = answer;
    }
    if (toColumn.dataset.kind === "won" && card.hasAttribute("data-no-amount")) {
      const answer = await askAmount(card);
      if (!answer) return;
      extra = answer;
    }
    targetList.prepend(card);  // optimistic; undone below when refused
    card.classList.add("moving");
    let result;
    try {
      result = await send(card, targetList.dataset.stage, extra);
    } catch (e) {
      result = {ok: false, status: 0, data: {}};
    }
    card.classList.remove("moving");
    if (result.ok) {
      card.dataset.version = result.data.version;
      if (result.data.amount) {
        card.removeAttribute("data-no-amount");
        const amount = card.querySelector(".deal-amount");
        if (amount && result.data.amount_text) amount.textContent = result.data.amount_text;
      }
      const select = card.querySelector(".card-move select");
      if (select) select.value = String(result.data.stage_id);
      const button = card.querySelector(".card-move button");
      if (button) button.value = card.dataset.deal + ":" + result.data.version;
      card.classList.toggle("no-next", card.classList.contains("no-next") && result.data.kind === "open");
      updateCount(fromColumn, -1);
      updateCount(toColumn, +1);
      say(result.data.message || board.dataset.msgMoved, false);
      refreshSums();
    } else {
      fromList.prepend(card);
      if (result.data && result.data.version) card.dataset.version = result.data.version;
      // Someone emptied the amount meanwhile: the next drop on Won asks for it.
      if (result.data && result.data.code === "amount") card.setAttribute("data-no-amount", "");
      say((result.data && result.data.error) || board.dataset.msgFailed, true);
      card.classList.add("refused");
      setTimeout(() => card.classList.remove("refused"), 2000);
    }
  }

  board.addEventListener("dragstart", (event) => {
    const card = event.target.closest && event.target.closest(".deal-card[draggable=true]");
    if (!card) return;
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.deal);
    card.classList.add("dragging");
  });
  board.addEventListener("dragend", () => {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    for (const el of board.querySelectorAll(".drop-target")) el.classList.remove("drop-target");
  });
  for (const column of board.querySelectorAll(".board-column")) {
    const list = column.querySelector("ol.cards");
    column.addEventListener("dragover", (event) => {
      if (!dragged) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      column.classList.add("drop-target");
    });
    column.addEventListener("dragleave", (event) => {
      if (!column.contains(event.relatedTarget)) column.classList.remove("drop-target");
    });
    column.addEventListener("drop", (event) => {
      event.preventDefault();
      column.classList.remove("drop-target");
      if (dragged && list) drop(dragged, list);
    });
  }
});

// When the columns do not fit, say so: a shadow on the side with more and a hint above.
document.addEventListener("DOMContentLoaded", () => {
  const board = document.getElementById("board");
  const frame = document.getElementById("board-frame");
  const hint = document.getElementById("board-scroll-hint");
  if (!board || !frame) return;
  const update = () => {
    const more = board.scrollWidth - board.clientWidth;
    frame.classList.toggle("more-right", more > 2 && board.scrollLeft < more - 2);
    frame.classList.toggle("more-left", board.scrollLeft > 2);
    if (hint) hint.hidden = more <= 2;
  };
  board.addEventListener("scroll", update, { passive: true });
  window.addEventListener("resize", update);
  update();
});
