// The page talks to the same server's JSON API and event stream; no libraries, no CDN.
const $ = (id) => document.getElementById(id);
const form = $('form');
let current = null; // { id, events }

function message(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : '';
}

async function loadModels() {
  try {
    const res = await fetch('/v1/models');
    const { models } = await res.json();
    $('model-info').textContent = models.map((m) => `${m.id} (${m.stage}, ${m.size}px)`).join(' → ');
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
      `${p.thresholding ?? 'default'} thresholding${p.negative_prompt ? ` · not “${p.negative_prompt}”` : ''}`;
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
  if (current) await fetch(`/v1/jobs/${current.id}`, { method: 'DELETE' });
});

loadModels();
