// Wharf's small page helpers: copy buttons and the drag-and-drop upload.
"use strict";

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

// <button data-copy="#id"> copies the text of the element #id.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  const text = source.value !== undefined ? source.value : source.textContent;
  const done = () => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text.trim()).then(done);
  } else {
    const area = document.createElement("textarea");
    area.value = text.trim();
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  }
});

// <form data-confirm="question"> asks before it is sent (no inline handlers: the CSP).
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// Upload page: <div class="dropzone" data-upload-url=... data-files-url=...>.
function setupUpload(zone) {
  const input = document.getElementById(zone.dataset.input);
  const list = document.getElementById(zone.dataset.list);

  function describe(item, state, text) {
    item.className = state;
    item.querySelector(".outcome").textContent = text;
  }

  function waitForIndex(item, file) {
    const url = new URL(zone.dataset.filesUrl, location.href);
    url.searchParams.set("subdir", file.subdir);
    url.searchParams.set("name", file.name);
    let tries = 0;
    const poll = () => {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((response) => response.json())
        .then((page) => {
          const row = (page.results || []).find((r) => r.filename === file.filename);
          if (row && row.state === "indexed") {
            describe(item, "indexed", `Indexed: ${row.subdir}/${row.filename}`);
            const link = document.createElement("a");
            link.href = zone.dataset.packageUrl.replace("__name__", encodeURIComponent(row.name));
            link.textContent = "View package";
            item.querySelector(".outcome").append(" · ", link);
          } else if (row && row.state === "failed") {
            describe(item, "failed", `Indexing failed: ${row.failure_reason}`);
          } else if (++tries < 240) {
            setTimeout(poll, 500);
          } else {
            describe(item, "failed", "Stored, but not indexed yet; reload this page later.");
          }
        })
        .catch(() => setTimeout(poll, 1000));
    };
    poll();
  }

  function send(file) {
    const item = document.createElement("li");
    item.innerHTML = '<div class="name"></div><progress max="100" value="0"></progress>' +
      '<div class="outcome" aria-live="polite">Waiting…</div>';
    item.querySelector(".name").textContent = file.name;
    const bar = item.querySelector("progress");
    bar.setAttribute("aria-label", `Upload progress of ${file.name}`);
    list.appendChild(item);

    const request = new XMLHttpRequest();
    const target = new URL(zone.dataset.uploadUrl, location.href);
    const labels = document.getElementById(zone.dataset.label);
    if (labels && labels.value.trim()) target.searchParams.set("label", labels.value.trim());
    request.open("POST", target);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("X-File-Name", file.name);
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) {
        bar.value = Math.round((100 * event.loaded) / event.total);
        describe(item, "uploading", `Uploading… ${bar.value}%`);
      }
    };
    request.onload = () => {
      bar.value = 100;
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
      if (request.status === 201) {
        describe(item, "pending", "Uploaded; indexing…");
        waitForIndex(item, body);
      } else if (request.status === 200) {
        // The same file was already there; nothing changed (body.detail says so).
        describe(item, "pending", body.detail || "Already there; nothing changed.");
        waitForIndex(item, body);
      } else {
        describe(item, "failed", body.detail || `Upload failed (HTTP ${request.status}).`);
      }
    };
    request.onerror = () => describe(item, "failed", "Upload failed: the connection broke.");
    request.send(file);
  }

  function sendAll(files) {
    for (const file of files) send(file);
  }

  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  input.addEventListener("change", () => {
    sendAll(input.files);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    sendAll(event.dataTransfer.files);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".dropzone[data-upload-url]").forEach(setupUpload);
});
