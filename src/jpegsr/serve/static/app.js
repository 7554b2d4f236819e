// jpegsr page: upload each image twice (bicubic and jpegsr, at the same chosen size), show
// them stacked with a slider that reveals one over the other, a zoom, and a download link.
"use strict";

const drop = document.getElementById("drop");
const input = document.getElementById("files");
const results = document.getElementById("results");
const template = document.getElementById("card");

async function upscale(file, method, format, choice) {
  const body = new FormData();
  body.append("file", file);
  body.append("method", method);
  body.append("format", format);
  if (choice.outscale !== "4") { body.append("outscale", choice.outscale); }
  if (choice.model) { body.append("model", choice.model); }  // "": the server's default
  const response = await fetch("/api/upscale", { method: "POST", body });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(detail || ("HTTP " + response.status));
  }
  return { blob: await response.blob(), headers: response.headers };
}

function setStatus(card, text, kind) {
  const status = card.querySelector(".status");
  status.className = "status " + (kind || "");
  status.querySelector(".text").textContent = text;
}

function applyView(card) {
  const slider = card.querySelector(".slider").value;
  const zoom = Number(card.querySelector(".zoom").value);
  const stack = card.querySelector(".stack");
  const before = card.querySelector(".before");
  const after = card.querySelector(".after");
  const width = before.naturalWidth * zoom;
  for (const img of [before, after]) { img.style.width = width + "px"; }
  stack.classList.toggle("pixelated", zoom >= 2);
  // jpegsr on the right of the divider, bicubic on the left
  after.style.clipPath = "inset(0 0 0 " + slider + "%)";
  card.querySelector(".divider").style.left = slider + "%";
  card.querySelector(".zoomval").textContent = zoom + "x";
}

async function handle(file) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = file.name;
  results.prepend(card);
  const format = document.getElementById("format").value;
  const choice = {
    outscale: document.getElementById("outscale").value,
    model: document.getElementById("model").value,
  };
  try {
    setStatus(card, "Upscaling " + file.name + "...");
    const [ours, bicubic] = await Promise.all([
      upscale(file, "jpegsr", format, choice), upscale(file, "bicubic", "png", choice),
    ]);
    const quality = ours.headers.get("X-JPEG-Quality");
    const model = ours.headers.get("X-Model");
    const size = ours.headers.get("X-Input-Size");
    const warnings = ours.headers.get("X-Warnings");
    card.querySelector(".info").textContent =
      "Input " + size + ", JPEG quality " + quality + ", model " + model +
      (warnings ? " (" + warnings + ")" : "");
    const before = card.querySelector(".before");
    const after = card.querySelector(".after");
    const loaded = (img) => new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; });
    const ready = Promise.all([loaded(before), loaded(after)]);
    before.src = URL.createObjectURL(bicubic.blob);
    after.src = URL.createObjectURL(ours.blob);
    await ready;
    const link = card.querySelector(".download");
    link.href = after.src;
    link.download = file.name.replace(/\.[^.]*$/, "") + "_x" + choice.outscale + "." + format;
    link.textContent = "Download " + format.toUpperCase() + " (" + after.naturalWidth + "x" + after.naturalHeight + ")";
    card.querySelector(".compare").hidden = false;
    for (const control of card.querySelectorAll(".slider, .zoom")) {
      control.addEventListener("input", () => applyView(card));
    }
    applyView(card);
    setStatus(card, "Done", "done");
  } catch (error) {
    setStatus(card, "Could not upscale " + file.name + ": " + error.message, "error");
  }
}

async function listModels() {
  // the shipped models, for the Model choice (auto stays the default)
  try {
    const models = await (await fetch("/api/models")).json();
    const select = document.getElementById("model");
    if (models.default !== "auto") { select.options[0].textContent = models.default + " (default)"; }
    for (const name of models.shipped) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      select.appendChild(option);
    }
  } catch (e) { /* the page still works with auto */ }
}

listModels();

async function handleAll(files) {
  for (const file of files) { await handle(file); }  // one at a time: the server is one machine
}

input.addEventListener("change", () => {
  const files = Array.from(input.files);
  input.value = "";  // so that choosing the same file again (other options) fires again
  handleAll(files);
});
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  handleAll(Array.from(e.dataTransfer.files));
});
