// The page talks to the same server's JSON API and event stream; no libraries, no CDN.
const $ = (id) => document.getElementById(id);
const form = $('form');
let current = null; // { id, events } of the server job being followed
let browserInfo = null; // /v1/browser when the server offers browser mode
let browserLib = null; // the bundled page-side pipeline (/browser.js), loaded on first use
let browserModel = null; // the cascade built in this page, kept between runs
let browserAbort = null;
// What the server fills in for steps / guidance (stage I's generation_config.json), shown as placeholders.
let modelDefaults = { steps: 50, guidance_scale: 7 };

function message(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : '';
}

async function loadModels() {
  try {
    const res = await fetch('/v1/models');
    const { models } = await res.json();
    $('model-info').textContent = models.map((m) => `${m.id} (${m.stage}, ${m.size}px)`).join(' → ');
    const base = models.find((m) => m.stage === 'base');
    modelDefaults = {
      steps: base?.steps ?? modelDefaults.steps,
      guidance_scale: base?.guidance_scale ?? modelDefaults.guidance_scale,
    };
    $('steps').placeholder = `${modelDefaults.steps} (model default)`;
    $('guidance_scale').placeholder = `${modelDefaults.guidance_scale} (model default)`;
    const sizes = [...new Set(models.map((m) => m.size))].sort((a, b) => b - a);
    $('size').replaceChildren(
      ...sizes.map((s) => {
        const o = document.createElement('option');
        o.value = String(s);
        o.textContent = `${s}×${s}`;
        return o;
      }),
    );
  } catch {
    $('model-info').textContent = 'no model information';
  }
}

/** Only fields the user set are sent: the server fills its defaults (and a random seed). */
function requestBody() {
  const body = { prompt: $('prompt').value };
  if ($('negative_prompt').value) body.negative_prompt = $('negative_prompt').value;
  for (const k of ['steps', 'seed', 'num_images', 'size'])
    if ($(k).value !== '') body[k] = Number($(k).value);
  if ($('guidance_scale').value !== '') body.guidance_scale = Number($('guidance_scale').value);
  if ($('thresholding').value) body.thresholding = $('thresholding').value;
  return body;
}

function busy(on) {
  $('generate').disabled = on;
  $('cancel').disabled = !on;
}

/** RGB bytes → PNG data URL (for previews, results and their download links). */
function rgbToDataUrl(img) {
  const canvas = document.createElement('canvas');
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = canvas.getContext('2d');
  const rgba = ctx.createImageData(img.width, img.height);
  for (let p = 0; p < img.width * img.height; p++) {
    rgba.data[p * 4] = img.data[p * 3];
    rgba.data[p * 4 + 1] = img.data[p * 3 + 1];
    rgba.data[p * 4 + 2] = img.data[p * 3 + 2];
    rgba.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(rgba, 0, 0);
  return canvas.toDataURL('image/png');
}

async function loadBrowserInfo() {
  try {
    const info = await (await fetch('/v1/browser')).json();
    if (info.available) {
      browserInfo = info;
      $('browser-mode-row').hidden = false;
    }
  } catch {
    // No browser mode: the server-backed page works alone.
  }
}

/** Browser mode: the same cascade (stage I, and stage II when the server has one), run in this page. */
async function runInBrowser(body) {
  browserLib ??= await import('/browser.js');
  if (!browserModel) {
    message('downloading the model into this page…');
    browserModel = await browserLib.loadModel({
      base: browserInfo.model_files,
      sr: browserInfo.sr_model_files,
      wasmPaths: browserInfo.ort,
    });
  }
  const params = {
    prompt: body.prompt,
    negative_prompt: body.negative_prompt ?? '',
    seed: body.seed ?? Math.floor(Math.random() * 2 ** 31),
    steps: body.steps ?? modelDefaults.steps,
    guidance_scale: body.guidance_scale ?? modelDefaults.guidance_scale,
    thresholding: body.thresholding,
    num_images: body.num_images ?? 1,
    // The size select picks the stages, as it does for the server.
    size: body.size,
  };
  browserAbort = new AbortController();
  $('live').hidden = false;
  message(`running in this browser (${browserModel.backend})…`);
  try {
    const images = await browserLib.generate(browserModel, params, {
      signal: browserAbort.signal,
      onProgress: (e) => {
        $('stage').textContent = `in this browser: ${e.stage}: step ${e.step} / ${e.total}`;
        $('progress').max = e.total;
        $('progress').value = e.step;
        if (e.preview) $('preview').src = rgbToDataUrl(e.preview);
      },
    });
    message(`done in this browser (${images.length} image${images.length > 1 ? 's' : ''})`);
    addToGallery({ params: { ...params, where: 'this browser' }, images: images.map(rgbToDataUrl) });
  } catch (err) {
    if (browserAbort.signal.aborted) message('cancelled');
    else message(`failed in this browser: ${err?.message ?? err}`, true);
  } finally {
    browserAbort = null;
    busy(false);
  }
}

function addToGallery(job) {
  $('empty')?.remove();
  const p = job.params;
  for (const [i, url] of job.images.entries()) {
    const card = document.createElement('figure');
    card.className = 'card';
    const img = document.createElement('img');
    img.src = url;
    img.alt = p.prompt;
    img.className = 'result';
    const caption = document.createElement('figcaption');
    const text = document.createElement('p');
    text.textContent = p.prompt;
    const meta = document.createElement('p');
    meta.className = 'muted';
    meta.textContent =
      `seed ${p.seed} · ${p.steps} steps · guidance ${p.guidance_scale} · ` +
      `${p.thresholding ?? 'default'} thresholding${p.negative_prompt ? ` · not “${p.negative_prompt}”` : ''}` +
      (p.where ? ` · ran in ${p.where}` : '');
    const link = document.createElement('a');
    link.href = url;
    link.download = `imagen-${p.seed}-${i}.png`;
    link.textContent = 'download';
    caption.append(text, meta, link);
    card.append(img, caption);
    $('gallery').prepend(card);
  }
}

function follow(id) {
  const events = new EventSource(`/v1/jobs/${id}/events`);
  current = { id, events };
  $('live').hidden = false;
  events.addEventListener('status', (e) => {
    const job = JSON.parse(e.data);
    if (job.status === 'queued') message('queued…');
    else if (job.status === 'running') message('running…');
  });
  events.addEventListener('progress', (e) => {
    const p = JSON.parse(e.data);
    $('stage').textContent = `${p.stage}: step ${p.step} / ${p.total}`;
    $('progress').max = p.total;
    $('progress').value = p.step;
  });
  events.addEventListener('preview', (e) => {
    $('preview').src = JSON.parse(e.data).image;
  });
  events.addEventListener('done', (e) => {
    const job = JSON.parse(e.data);
    events.close();
    current = null;
    busy(false);
    if (job.status === 'done') {
      message(`done (${job.images.length} image${job.images.length > 1 ? 's' : ''})`);
      addToGallery(job);
    } else if (job.status === 'cancelled') message('cancelled');
    else message(`failed: ${job.error ?? 'unknown error'}`, true);
  });
  // EventSource reconnects by itself after network errors; the server re-sends the job state.
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) {
      busy(false);
      message('lost the connection to the server', true);
    }
  };
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  busy(true);
  if ($('browser-mode').checked && browserInfo) {
    await runInBrowser(requestBody()).catch((err) => {
      busy(false);
      message(`browser mode failed: ${err?.message ?? err}`, true);
    });
    return;
  }
  message('submitting…');
  try {
    const res = await fetch('/v1/generate', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(requestBody()),
    });
    const body = await res.json();
    if (res.status !== 202) {
      busy(false);
      message(body.field ? `${body.field}: ${body.message}` : body.message, true);
      return;
    }
    follow(body.id);
  } catch (err) {
    busy(false);
    message(`request failed: ${err}`, true);
  }
});

$('cancel').addEventListener('click', async () => {
  if (browserAbort) browserAbort.abort();
  else if (current) await fetch(`/v1/jobs/${current.id}`, { method: 'DELETE' });
});

loadModels();
loadBrowserInfo();
