// Home page: the patients under /output/, read from the server's listing.
import { fetch_listing } from "./dirlist.js";

const list = document.getElementById("patients");
const status = document.getElementById("status");
const alert_box = document.getElementById("alert");

function patient_item(pid) {
  const li = document.createElement("li");
  li.dataset.patient = pid;
  const name = document.createElement("span");
  name.className = "pid";
  name.textContent = pid;
  const viewer = document.createElement("a");
  viewer.className = "viewer";
  viewer.href = `/viewer.html?patient=${encodeURIComponent(pid)}`;
  viewer.textContent = "Open viewer";
  const files = document.createElement("a");
  files.className = "files";
  files.href = `/output/${encodeURIComponent(pid)}/`;
  files.textContent = "Files";
  li.append(name, viewer, files);
  return li;
}

async function main() {
  let entries;
  try {
    entries = await fetch_listing("/output/");
  } catch (e) {
    if (e.status === 403 || e.status === 404) {
      status.textContent = "The server does not list the data root; open a patient by its id below.";
      return;
    }
    throw e;
  }
  const patients = entries.filter((e) => e.is_dir).map((e) => e.name);
  for (const pid of patients) list.append(patient_item(pid));
  status.textContent = patients.length === 0
    ? "No patients under the data root yet."
    : `${patients.length} patient${patients.length === 1 ? "" : "s"}`;
}

main().catch((e) => {
  status.textContent = "";
  alert_box.textContent = `Could not load the patient list: ${e.message}`;
  alert_box.hidden = false;
});
