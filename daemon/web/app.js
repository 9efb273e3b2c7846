// The feu page: a client of the HTTP API (/v1/openapi.json), nothing more.
// Images are fetched (with the token when one is set) and shown as blob URLs.
'use strict';

const $ = (id) => document.getElementById(id);
const WAIT_S = 60;
let photoFile = null;
let sequence = 0;          // the latest edit shown; older answers are dropped
let sliderTimer = null;

// Errors in words: what happened and what to do, then the daemon's own message.
const WORDS = {
  bad_request: 'The request was not understood.',
  unknown_field: 'The request has a field the server does not know.',
  payload_too_large: 'Too large for the server (a smaller photo, fewer α values or a shorter text will do).',
  invalid_argument: 'A value is out of range.',
  shape_mismatch: 'The latent does not fit the model.',
  no_channels: 'No style channel passes this β: lower β or let it be automatic.',
  no_face: 'No face was found in the photo: try one where the face is larger and turned to the camera.',
  not_found: 'Not found (it may have expired).',
  id_conflict: 'This request id was already used for another edit.',
  busy: 'The server is busy; try again in a few seconds.',
  shutting_down: 'The server is starting or stopping; try again in a moment.',
  deadline_exceeded: 'The edit waited too long in the queue and was dropped.',
  cancelled: 'The edit was cancelled.',
  unauthorized: 'This server needs an access token (open “Access token” below the Edit button).',
  unsupported: 'This server cannot do that (for photos it needs a face encoder).',
  io_error: 'The server could not be reached or could not write its files.',
  internal: 'The server failed unexpectedly.',
};

function describeError(error) {
  const words = WORDS[error.code] || 'The edit failed.';
  return error.message ? `${words} (${error.message})` : words;
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const token = $('token').value.trim();
  if (token) h.Authorization = 'Bearer ' + token;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  let response;
  try {
    response = await fetch(path, opts);
  } catch (e) {
    throw { code: 'io_error', message: 'no answer from ' + location.host };
  }
  const type = response.headers.get('Content-Type') || '';
  const body = type.startsWith('application/json') ? await response.json() : null;
  if (!response.ok) throw (body && body.error) || { code: 'internal', message: 'HTTP ' + response.status };
  return { status: response.status, body };
}

async function imageUrl(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw { code: 'not_found', message: 'image ' + path + ': HTTP ' + response.status };
  return URL.createObjectURL(await response.blob());
}

function parseStrip() {
  const values = $('strip').value.split(/[\s,;]+/).filter((s) => s !== '').map(Number);
  if (values.length === 0 || values.some((v) => !Number.isFinite(v)))
    throw { code: 'invalid_argument', message: 'the α strip must list numbers, e.g. -4, 0, 4' };
  return values;
}

function editFields(alphas) {
  const fields = { instruction: $('instruction').value.trim(), alphas, method: $('method').value };
  if (!fields.instruction) throw { code: 'bad_request', message: 'type an instruction first, e.g. “blond hair”' };
  if (fields.method === 'global') fields.neutral = $('neutral').value.trim() || 'face';
  if ($('beta-auto').checked) fields.beta = 'auto';
  else fields.beta = Number($('beta').value);
  if (source() === 'seed') {
    fields.latent = 'seed';
    fields.seed = Number($('seed').value);
    fields.return_original = true;
  } else {
    if (!photoFile) throw { code: 'bad_request', message: 'choose or drop a photo first (or pick a seed)' };
    if ($('paste').checked) fields.paste = true;
  }
  return fields;
}

async function submitEdit(fields) {
  let result;
  if (source() === 'photo') {
    const form = new FormData();
    form.append('request', new Blob([JSON.stringify(fields)], { type: 'application/json' }), 'request.json');
    form.append('photo', photoFile, photoFile.name || 'photo');
    result = await api('/v1/edits?wait=' + WAIT_S, { method: 'POST', body: form });
  } else {
    result = await api('/v1/edits?wait=' + WAIT_S, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(fields),
    });
  }
  let edit = result.body;
  while (edit.state === 'queued' || edit.state === 'running') {
    setStatus(`Waiting (${edit.state})…`);
    edit = (await api('/v1/edits/' + encodeURIComponent(edit.id) + '?wait=' + WAIT_S)).body;
  }
  if (edit.state !== 'done') throw edit.error || { code: edit.state, message: '' };
  return edit;
}

function source() { return document.querySelector('input[name=source]:checked').value; }

function setStatus(text) { $('status').textContent = text; }

function showError(error) {
  const box = $('error');
  if (!error) { box.hidden = true; box.textContent = ''; return; }
  box.textContent = describeError(error);
  box.hidden = false;
  setStatus('The last edit did not finish.');
}

async function figure(image, caption) {
  const fig = document.createElement('figure');
  const img = document.createElement('img');
  img.alt = caption;
  img.src = await imageUrl(image.url);
  const cap = document.createElement('figcaption');
  cap.textContent = caption;
  fig.append(img, cap);
  return fig;
}

function alphaLabel(alpha) { return 'α = ' + (Math.round(alpha * 100) / 100); }

async function renderGrid(edit) {
  const grid = $('grid');
  const figures = [];
  if (edit.original) figures.push(await figure(edit.original, source() === 'photo' ? 'reconstruction' : 'original'));
  for (const image of edit.images) figures.push(await figure(image, alphaLabel(image.alpha)));
  grid.replaceChildren(...figures);
}

async function renderCurrent(edit, alpha) {
  const image = edit.images[0];
  $('current-img').src = await imageUrl(image.url);
  $('current-img').alt = `${edit.diagnostics.instruction || $('instruction').value} at ${alphaLabel(alpha)}`;
  $('current-caption').textContent = alphaLabel(alpha);
  $('current').hidden = false;
}

function table(rows, headings) {
  const t = document.createElement('table');
  if (headings) {
    const tr = t.insertRow();
    for (const h of headings) { const th = document.createElement('th'); th.textContent = h; tr.append(th); }
  }
  for (const row of rows) {
    const tr = t.insertRow();
    row.forEach((value, i) => {
      const td = tr.insertCell();
      td.textContent = value;
      if (i > 0) td.className = 'num';
    });
  }
  return t;
}

async function thumbs(hits, kind, label) {
  const box = document.createElement('div');
  box.className = 'thumbs ' + kind;
  box.setAttribute('role', 'list');
  box.setAttribute('aria-label', label);
  for (const hit of (hits || []).slice(0, 24)) {
    const img = document.createElement('img');
    img.setAttribute('role', 'listitem');
    img.alt = `corpus image ${hit.id}, similarity ${Number(hit.score).toFixed(3)}`;
    img.title = img.alt;
    box.append(img);
    if (hit.thumbnail) imageUrl(hit.thumbnail).then((url) => { img.src = url; }).catch(() => { img.alt += ' (unavailable)'; });
  }
  return box;
}

function heading(text) { const h = document.createElement('h3'); h.textContent = text; return h; }

function paragraph(text) { const p = document.createElement('p'); p.textContent = text; return p; }

async function renderWhy(edit) {
  const d = edit.diagnostics || {};
  const parts = [];
  const retrieval = d.retrieval;
  if (retrieval) {
    parts.push(heading('Retrieved corpus images'));
    parts.push(paragraph('Positives (most like the instruction), framed green:'));
    parts.push(await thumbs(retrieval.positives, 'pos', 'positive corpus images'));
    parts.push(paragraph('Negatives, framed red:'));
    parts.push(await thumbs(retrieval.negatives, 'neg', 'negative corpus images'));
  } else if (d.method === 'global') {
    parts.push(paragraph('A global direction uses no corpus images: it is the target text minus the neutral text.'));
  }
  const numbers = [];
  if (d.svm) {
    numbers.push(['SVM accuracy', (100 * d.svm.accuracy).toFixed(1) + ' %']);
    numbers.push(['SVM margin', Number(d.svm.margin).toFixed(3)]);
  }
  if (d.beta !== undefined) numbers.push(['β' + (d.beta_auto ? ' (automatic)' : ''), Number(d.beta).toFixed(3)]);
  if (d.channels_changed !== undefined) numbers.push(['channels changed', d.channels_changed]);
  if (numbers.length) { parts.push(heading('Direction')); parts.push(table(numbers)); }
  if (Array.isArray(d.top_channels) && d.top_channels.length) {
    const byLayer = new Map();
    for (const c of d.top_channels) byLayer.set(c.layer, (byLayer.get(c.layer) || 0) + 1);
    const rows = [...byLayer.entries()]
      .sort((a, b) => String(a[0]).localeCompare(String(b[0]), undefined, { numeric: true }))
      .map(([layer, n]) => [String(layer), n]);
    parts.push(heading(`Layers of the ${d.top_channels.length} most changed channels`));
    parts.push(table(rows, ['layer', 'channels']));
  }
  const timings = Object.entries(d.timings_ms || {}).map(([stage, ms]) => [stage, Number(ms).toFixed(1) + ' ms']);
  for (const [k, v] of Object.entries(edit.timings_ms || {}))
    if (k !== 'batch_size') timings.push(['service ' + k.replace(/_ms$/, ''), Number(v).toFixed(1) + ' ms']);
  if (timings.length) { parts.push(heading('Time per stage')); parts.push(table(timings)); }
  if (d.artifact_version) parts.push(paragraph('Artifact version: ' + d.artifact_version));
  const why = $('why');
  why.classList.remove('muted');
  why.replaceChildren(...parts);
}

const PREVIEW_SIDE = 256;
let fullSide = 0;  // the generator's side, learned from the first full-size result

async function runEdit(alphas, target) {
  const mine = ++sequence;
  showError(null);
  let fields;
  try {
    fields = editFields(alphas);
  } catch (e) { showError(e); return; }
  $('submit').disabled = true;
  setStatus('Editing…');
  try {
    // The slider answers fast at 256² (StyleGAN2 stops at that block), then
    // the full size follows; the photo's inversion is cached by the daemon.
    if (target === 'current' && fullSide > PREVIEW_SIDE && !fields.paste) {
      const preview = await submitEdit(Object.assign({}, fields, { size: PREVIEW_SIDE }));
      if (mine !== sequence) return;
      await renderCurrent(preview, alphas[0]);
      setStatus('Preview shown; the full size follows…');
    }
    const edit = await submitEdit(fields);
    if (mine !== sequence) return;
    if (!fields.paste && edit.images.length) fullSide = Math.max(fullSide, edit.images[0].width);
    if (target === 'grid') await renderGrid(edit);
    else await renderCurrent(edit, alphas[0]);
    await renderWhy(edit);
    setStatus(`Done: “${fields.instruction}”, ${edit.images.length} image(s).`);
  } catch (e) {
    if (mine === sequence) showError(e);
  } finally {
    if (mine === sequence) $('submit').disabled = false;
  }
}

function choosePhoto(file) {
  if (!file) return;
  if (!/^image\/(png|jpeg)$/.test(file.type)) {
    showError({ code: 'bad_request', message: `${file.name} is not a PNG or JPEG file` });
    return;
  }
  photoFile = file;
  const preview = $('photo-preview');
  preview.src = URL.createObjectURL(file);
  preview.alt = 'the chosen photo: ' + file.name;
  preview.hidden = false;
  $('drop-text').textContent = file.name + ' — drop or choose another';
  showError(null);
}

function wire() {
  $('edit-form').addEventListener('submit', (event) => {
    event.preventDefault();
    let strip;
    try { strip = parseStrip(); } catch (e) { showError(e); return; }
    runEdit(strip, 'grid');
  });
  for (const radio of document.querySelectorAll('input[name=source]'))
    radio.addEventListener('change', () => {
      $('photo-box').hidden = source() !== 'photo';
      $('seed-box').hidden = source() !== 'seed';
    });
  $('photo').addEventListener('change', () => choosePhoto($('photo').files[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    choosePhoto(e.dataTransfer.files[0]);
  });
  $('random-seed').addEventListener('click', () => { $('seed').value = Math.floor(Math.random() * 100000); });
  $('method').addEventListener('change', () => { $('neutral-box').hidden = $('method').value !== 'global'; });
  $('beta-auto').addEventListener('change', () => { $('beta').disabled = $('beta-auto').checked; });
  const alpha = $('alpha');
  alpha.addEventListener('input', () => {
    $('alpha-value').textContent = Number(alpha.value).toFixed(1);
    clearTimeout(sliderTimer);
    // An edit per pause of the slider, not per pixel it moves.
    sliderTimer = setTimeout(() => runEdit([Number(alpha.value)], 'current'), 300);
  });
  $('token').value = sessionStorage.getItem('feu-token') || '';
  $('token').addEventListener('change', () => sessionStorage.setItem('feu-token', $('token').value));
  api('/readyz').then((r) => {
    if (r.body && r.body.artifact_version) $('version').textContent = 'Artifact version ' + r.body.artifact_version + '.';
  }).catch(() => { $('version').textContent = 'The server is not ready yet.'; });
}

wire();
