// The jobs page: polls the gateway's JSON routes with the key kept in this tab's sessionStorage.
// Everything shown is set with textContent (a tomogram URI is user input); images and downloads are
// fetched with the key and shown through blob URLs.
"use strict";

const KEY_NAME = "octopi-api-key";
const FORMATS = ["json", "csv", "star", "copick", "ndjson"];
const POLL_MS = 1500;
const $ = (id) => document.getElementById(id);

let selectedId = null;
let previewFor = null;

function el(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  return node;
}

function say(text) {
  $("message").textContent = text || "";
}

async function api(path, options) {
  const headers = new Headers((options && options.headers) || {});
  const key = sessionStorage.getItem(KEY_NAME);
  if (key) headers.set("Authorization", "Bearer " + key);
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  if (!response.ok) {
    let detail = response.status + " " + response.statusText;
    try {
      const problem = await response.json();
      detail = (problem.title || detail) + (problem.detail ? ": " + problem.detail : "");
    } catch (e) {
      // not problem+json: keep the status line
    }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response;
}

function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 90) return Math.round(value) + " s";
  return Math.round(value / 60) + " min";
}

function showKeyState() {
  $("key-state").textContent = sessionStorage.getItem(KEY_NAME) ? "key set for this tab" : "no key";
}

// -- the jobs table -------------------------------------------------------------------------------------

function jobRow(job) {
  const row = el("tr", null, { "data-job-id": job.id });
  if (job.id === selectedId) row.className = "selected";
  row.append(el("td", new Date(job.created_at).toLocaleTimeString()));
  row.append(el("td", job.tomogram_uri, { class: "uri" }));
  row.append(el("td", job.status, { "data-status": job.status }));
  row.append(el("td", job.stage || ""));
  const cell = el("td");
  cell.append(el("progress", null, { max: 1, value: job.progress }));
  cell.append(el("span", " " + Math.round(job.progress * 100) + " %"));
  row.append(cell);
  row.append(el("td", seconds(job.eta_s)));
  row.addEventListener("click", () => select(job.id));
  return row;
}

async function refreshJobs() {
  const jobs = await (await api("/jobs?limit=50")).json();
  $("jobs").tBodies[0].replaceChildren(...jobs.data.map(jobRow));
}

// -- one job ----------------------------------------------------------------------------------------------

function fact(list, name, value) {
  list.append(el("dt", name), el("dd", value));
}

function fillTable(table, entries, format) {
  table.tBodies[0].replaceChildren(
    ...entries.map(([name, value]) => {
      const row = el("tr");
      row.append(el("td", name), el("td", format(value)));
      return row;
    }),
  );
}

async function download(job, format) {
  try {
    const response = await api(`/jobs/${encodeURIComponent(job.id)}/picks?format=${format}`);
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const link = el("a", null, { download: match ? match[1] : `picks.${format}` });
    link.href = URL.createObjectURL(await response.blob());
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    say(`download ${format}: ${error.message}`);
  }
}

async function cancel(job) {
  try {
    await api(`/jobs/${encodeURIComponent(job.id)}`, { method: "DELETE" });
    await refresh();
  } catch (error) {
    say(`cancel: ${error.message}`);
  }
}

async function showPreview(job) {
  if (previewFor === job.id) return;
  previewFor = job.id;
  const image = $("preview");
  try {
    const blob = await (await api(`/jobs/${encodeURIComponent(job.id)}/preview.png`)).blob();
    if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
    image.src = URL.createObjectURL(blob);
    $("preview-figure").hidden = false;
  } catch (error) {
    previewFor = null;
    say(`preview: ${error.message}`);
  }
}

function showJob(job) {
  $("job").hidden = false;
  $("job-id").textContent = job.id;
  const facts = $("job-facts");
  facts.replaceChildren();
  fact(facts, "tomogram", job.tomogram_uri);
  fact(facts, "status", job.status + (job.stage ? ` (${job.stage})` : ""));
  fact(facts, "progress", Math.round(job.progress * 100) + " %" + (job.eta_s !== null ? `, ETA ${seconds(job.eta_s)}` : ""));
  fact(facts, "model version", job.model_version);
  fact(facts, "created", new Date(job.created_at).toLocaleString());
  if (job.finished_at) fact(facts, "finished", new Date(job.finished_at).toLocaleString());
  if (job.reused_from) fact(facts, "reused result of", job.reused_from);
  if (job.error) fact(facts, "error", `${job.error.title}: ${job.error.detail || ""}`);

  const actions = $("job-actions");
  actions.replaceChildren();
  if (job.status === "queued" || job.status === "running") {
    const button = el("button", "Cancel", { type: "button" });
    button.addEventListener("click", () => cancel(job));
    actions.append(button);
  }
  fillTable($("counts"), Object.entries(job.counts), (n) => n);
  fillTable($("timings"), Object.entries(job.timings_s), (s) => s.toFixed(2));

  const downloads = $("downloads");
  downloads.replaceChildren();
  if (job.status === "succeeded") {
    for (const format of FORMATS) {
      const button = el("button", format, { type: "button", "data-format": format });
      button.addEventListener("click", () => download(job, format));
      downloads.append(button);
    }
    showPreview(job);
  } else {
    $("preview-figure").hidden = true;
    downloads.textContent = "once the job has succeeded";
  }
}

async function refreshJob() {
  if (!selectedId) return;
  try {
    showJob(await (await api(`/jobs/${encodeURIComponent(selectedId)}`)).json());
  } catch (error) {
    if (error.status === 404) {
      selectedId = null;
      $("job").hidden = true;
    }
    throw error;
  }
}

function select(jobId) {
  selectedId = jobId;
  previewFor = null;
  $("preview-figure").hidden = true;
  for (const row of $("jobs").tBodies[0].rows) {
    row.className = row.getAttribute("data-job-id") === jobId ? "selected" : "";
  }
  refreshJob().catch((error) => say(error.message));
}

// -- models -------------------------------------------------------------------------------------------------

function weighted(scores) {
  return Object.entries(scores || {})
    .filter(([, value]) => value && typeof value.weighted_f_beta === "number")
    .map(([name, value]) => `${name} ${value.weighted_f_beta.toFixed(3)}`)
    .join(", ");
}

async function refreshModels() {
  const models = await (await api("/models")).json();
  $("models").tBodies[0].replaceChildren(
    ...models.data.map((model) => {
      const row = el("tr");
      row.append(
        el("td", model.version),
        el("td", model.champion ? "champion" : ""),
        el("td", model.classes.join(", ")),
        el("td", weighted(model.scores)),
      );
      return row;
    }),
  );
}

// -- wiring ------------------------------------------------------------------------------------------------

async function refresh() {
  try {
    await refreshJobs();
    await refreshJob();
    if ($("message").dataset.fromPoll) say("");
  } catch (error) {
    say(error.message);
    $("message").dataset.fromPoll = "1";
  }
}

async function submit(event) {
  event.preventDefault();
  const uri = $("uri").value.trim();
  if (!uri) return;
  try {
    const response = await api("/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ tomogram_uri: uri }),
    });
    const job = await response.json();
    say("");
    $("uri").value = "";
    select(job.id);
    await refresh();
  } catch (error) {
    delete $("message").dataset.fromPoll;
    say(`submit: ${error.message}`);
  }
}

function start() {
  showKeyState();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    if (key) sessionStorage.setItem(KEY_NAME, key);
    else sessionStorage.removeItem(KEY_NAME);
    $("key").value = "";
    showKeyState();
    refresh();
    refreshModels().catch((error) => say(error.message));
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_NAME);
    showKeyState();
  });
  $("submit-form").addEventListener("submit", submit);
  refresh();
  refreshModels().catch((error) => say(error.message));
  setInterval(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
