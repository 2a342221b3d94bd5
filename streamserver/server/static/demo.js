// streamserver demo page: capture audio, stream it over protocol v1, play the
// redacted audio back and show the masked live transcript. Plain JS, no build.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $('controls'), start: $('start'), stop: $('stop'), status: $('status'),
    sample: $('sample'), delay: $('delay'), delayValue: $('delay-value'),
    audioRedaction: $('audio-redaction'), textSubstitution: $('text-substitution'),
    token: $('token'), finals: $('finals'), partial: $('partial'),
    redactions: $('redactions'), redactionCount: $('redaction-count'),
    sent: $('sent'), received: $('received'),
  };
  const SERVER_RATES = [48000, 24000, 16000];
  const JITTER_S = 0.15;          // playback head start (jitter buffer)
  const MAX_QUEUED_FRAMES = 100;  // 2 s of audio held while the socket opens

  let run = null;  // the current session, or null when idle

  // ---------------------------------------------------------------- status
  function setStatus(text, state = 'idle') {
    ui.status.textContent = text;
    ui.status.dataset.state = state;
  }

  function fmtTime(s) {
    return typeof s === 'number' ? s.toFixed(2) + ' s' : '';
  }

  // ------------------------------------------------------------ transcript
  // Masked values in a text: '#'-runs (with their separators) and [ENTITY] tokens.
  const MASK_RE = /\[[A-Z][A-Z_]*\]|#+(?:[-./:@,]?#+)*/g;

  function appendMasked(parent, text) {
    let last = 0;
    for (const m of text.matchAll(MASK_RE)) {
      if (m.index > last) parent.append(text.slice(last, m.index));
      parent.append(maskEl(m[0], null));
      last = m.index + m[0].length;
    }
    if (last < text.length) parent.append(text.slice(last));
  }

  function maskEl(text, entity) {
    const mark = document.createElement('mark');
    mark.className = 'redacted';
    if (entity) {
      mark.dataset.entity = entity;
      mark.title = `${entity} (redacted)`;
    } else {
      mark.title = 'redacted';
    }
    const hint = document.createElement('span');
    hint.className = 'visually-hidden';
    hint.textContent = entity ? `redacted ${entity}: ` : 'redacted: ';
    mark.append(hint, text);
    return mark;
  }

  function showPartial(ev) {
    ui.partial.replaceChildren();
    appendMasked(ui.partial, ev.text || '');
  }

  // Final words of one utterance go on one line; a new line after each speech.ended.
  function showFinal(r, ev) {
    // Finals of an utterance arrive around its speech.ended: break the line at the
    // first final that starts after an utterance end.
    if (r.utteranceEnds.length && typeof ev.start === 'number' && ev.start >= r.utteranceEnds[0]) {
      r.line = null;
      r.openEntity = null;
      r.utteranceEnds = r.utteranceEnds.filter((t) => t > ev.start);
    }
    let line = r.line;
    if (!line) {
      line = document.createElement('p');
      line.className = 'final';
      const t = document.createElement('span');
      t.className = 'time';
      t.textContent = fmtTime(ev.start);
      line.append(t);
      ui.finals.append(line);
      r.line = line;
    } else {
      line.append(' ');
    }
    const words = Array.isArray(ev.words) ? ev.words : null;
    if (!words) {
      appendMasked(line, ev.text || '');
    } else {
      // One <mark> per run of redacted words with the same entity (as the server's text).
      const entityNames = r.config.text_substitution === 'entity_name';
      let i = 0;
      // A span can reach us over several finals: with entity names, words that go
      // on with the last final's span add no second mark (the server's text
      // does not repeat the token either).
      while (entityNames && i < words.length && words[i].redacted
             && r.openEntity && words[i].entity === r.openEntity) {
        i += 1;
      }
      const last = words[words.length - 1];
      r.openEntity = last && last.redacted ? last.entity : null;
      while (i < words.length) {
        const w = words[i];
        if (i > 0) line.append(' ');
        if (!w.redacted) {
          appendMasked(line, w.text);
          i += 1;
          continue;
        }
        const parts = [w.text];
        let j = i + 1;
        while (j < words.length && words[j].redacted && words[j].entity === w.entity) {
          if (!entityNames) parts.push(words[j].text);
          j += 1;
        }
        line.append(maskEl(parts.join(' '), w.entity || 'REDACTED'));
        i = j;
      }
    }
    ui.partial.replaceChildren();
  }

  function showRedaction(ev) {
    const li = document.createElement('li');
    const ent = document.createElement('span');
    ent.className = 'entity';
    ent.textContent = ev.entity;
    const score = typeof ev.score === 'number' ? `, score ${ev.score.toFixed(2)}` : '';
    li.append(ent, ` ${fmtTime(ev.start)} – ${fmtTime(ev.end)}${score}`);
    ui.redactions.append(li);
    ui.redactionCount.textContent = `(${ui.redactions.children.length})`;
  }

  // ------------------------------------------------------------- playback
  class Player {
    constructor(ctx, rate) {
      this.ctx = ctx;
      this.rate = rate;
      this.next = 0;          // context time at which the next chunk starts
      this.out = ctx.createGain();
      this.out.connect(ctx.destination);
    }

    push(arrayBuffer) {
      const pcm = new Int16Array(arrayBuffer);
      if (pcm.length === 0) return;
      const buf = this.ctx.createBuffer(1, pcm.length, this.rate);
      const ch = buf.getChannelData(0);
      for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
      const src = this.ctx.createBufferSource();
      src.buffer = buf;
      src.connect(this.out);
      const now = this.ctx.currentTime;
      if (this.next < now) this.next = now + JITTER_S;  // first chunk, or an underrun
      src.start(this.next);
      this.next += buf.duration;
    }

    remaining() {
      return Math.max(0, this.next - this.ctx.currentTime);
    }
  }

  // -------------------------------------------------------------- session
  function settings() {
    return {
      source: ui.form.elements.source.value,
      sample: ui.sample.value,
      delay_ms: ui.delay.value,
      audio_redaction: ui.audioRedaction.value,
      text_substitution: ui.textSubstitution.value,
      token: ui.token.value.trim(),
    };
  }

  // The API key never goes in a URL: it buys a one-use, one-minute token first.
  async function sessionToken(key) {
    if (!key) return '';
    const resp = await fetch('/v1/tokens', {
      method: 'POST', body: '{}',
      headers: { 'Authorization': `Bearer ${key}`, 'Content-Type': 'application/json' },
    });
    if (!resp.ok) throw new Error(resp.status === 401 ? 'the API key was refused'
                                                      : `token request failed (${resp.status})`);
    return (await resp.json()).token;
  }

  function streamUrl(params, token) {
    const q = new URLSearchParams(params);
    if (token) q.set('token', token);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/v1/stream?${q}`;
  }

  function setRunning(running) {
    ui.start.disabled = running;
    ui.stop.disabled = !running;
    for (const el of ui.form.querySelectorAll('fieldset, details')) el.disabled = running;
    for (const el of ui.form.querySelectorAll('fieldset input, fieldset select, details input')) {
      el.disabled = running;
    }
  }

  async function start() {
    if (run) return;
    const s = settings();
    if (!window.isSecureContext || !window.AudioWorkletNode) {
      setStatus('Error: this page needs a secure context (https, or http on localhost) ' +
                'for audio capture.', 'error');
      return;
    }
    ui.finals.replaceChildren();
    ui.partial.replaceChildren();
    ui.redactions.replaceChildren();
    ui.redactionCount.textContent = '(0)';
    ui.sent.textContent = ui.received.textContent = '0.0';
    setRunning(true);
    setStatus('Starting…', 'busy');

    const ctx = new AudioContext({ latencyHint: 'interactive' });
    const rate = SERVER_RATES.includes(ctx.sampleRate) ? ctx.sampleRate : 16000;
    run = {
      ctx, rate, ws: null, node: null, source: null, stream: null, queue: [],
      player: new Player(ctx, rate), inputDone: false, errorShown: false,
      sessionId: '', config: { text_substitution: s.text_substitution }, speaking: false,
      line: null, openEntity: null, utteranceEnds: [], sentSamples: 0, receivedSamples: 0, meterTimer: 0,
    };
    const r = run;
    try {
      await ctx.resume();
      await ctx.audioWorklet.addModule('capture-worklet.js');
      if (s.source === 'mic') {
        setStatus('Asking for the microphone…', 'busy');
        r.stream = await navigator.mediaDevices.getUserMedia({
          audio: { channelCount: 1, echoCancellation: true },
        });
        r.source = ctx.createMediaStreamSource(r.stream);
      } else {
        setStatus('Loading the sample clip…', 'busy');
        const resp = await fetch(s.sample);
        if (!resp.ok) throw new Error(`sample clip: HTTP ${resp.status}`);
        const audio = await ctx.decodeAudioData(await resp.arrayBuffer());
        r.source = ctx.createBufferSource();
        r.source.buffer = audio;
        r.source.onended = () => finishInput(r, 'End of the sample clip');
      }
      if (run !== r) return;  // stopped meanwhile
      r.node = new AudioWorkletNode(ctx, 'capture', {
        numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      });
      r.node.port.onmessage = (e) => onCaptured(r, e.data);
      const sink = ctx.createGain();  // keeps the worklet pulled; plays nothing
      sink.gain.value = 0;
      r.node.connect(sink).connect(ctx.destination);

      setStatus('Connecting…', 'busy');
      await openSocket(r, s);
      if (run !== r) return;
      r.source.connect(r.node);
      if (r.source instanceof AudioBufferSourceNode) r.source.start();
    } catch (err) {
      fail(r, `Error: ${err && err.message ? err.message : err}`);
    }
  }

  function openSocket(r, s) {
    const params = {
      encoding: 'pcm_s16le', sample_rate: String(r.rate), channels: '1',
      delay_ms: s.delay_ms, audio_redaction: s.audio_redaction,
      text_substitution: s.text_substitution, pace: 'realtime',
    };
    return sessionToken(s.token).then((token) => new Promise((resolve, reject) => {
      const ws = new WebSocket(streamUrl(params, token));
      ws.binaryType = 'arraybuffer';
      r.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        for (const f of r.queue) ws.send(f);
        r.queue = [];
        resolve();
      };
      ws.onmessage = (e) => {
        if (typeof e.data === 'string') onEvent(r, e.data);
        else {
          r.player.push(e.data);
          r.receivedSamples += e.data.byteLength / 2;
          updateMeter(r);
        }
      };
      ws.onerror = () => {
        if (!opened) reject(new Error('could not connect to the server'));
      };
      ws.onclose = (e) => onClosed(r, e);
    }));
  }

  function onCaptured(r, msg) {
    if (msg.type !== 'frame') return;
    const ws = r.ws;
    r.sentSamples += msg.data.byteLength / 2;
    updateMeter(r);
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(msg.data);
    else if (!ws || ws.readyState === WebSocket.CONNECTING) {
      if (r.queue.length < MAX_QUEUED_FRAMES) r.queue.push(msg.data);
    }
  }

  function onEvent(r, text) {
    let ev;
    try { ev = JSON.parse(text); } catch { return; }
    switch (ev.type) {
      case 'session.begin':
        r.sessionId = ev.session_id || '';
        r.config = ev.config || r.config;
        setStatus(`Connected — session ${r.sessionId} · ${r.rate / 1000} kHz · ` +
                  `delay ${r.config.delay_ms} ms · ${r.config.audio_redaction}`, 'live');
        break;
      case 'speech.started':
      case 'speech.ended':
        r.speaking = ev.type === 'speech.started';
        if (!r.speaking && typeof ev.end === 'number') r.utteranceEnds.push(ev.end);
        if (!r.inputDone && !r.errorShown) {
          setStatus(`Connected — session ${r.sessionId} · ${r.speaking ? 'speech' : 'silence'}`,
                    'live');
        }
        break;
      case 'transcript.partial': showPartial(ev); break;
      case 'transcript.final': showFinal(r, ev); break;
      case 'redaction': showRedaction(ev); break;
      case 'error':
        r.errorShown = true;
        setStatus(`Error ${ev.code}: ${ev.message}`, 'error');
        break;
      case 'session.end': {
        const st = ev.stats || {};
        const sec = (ms) => (typeof ms === 'number' ? (ms / 1000).toFixed(1) : '?');
        setStatus(`Session ${ev.session_id} ended — ${sec(st.audio_in_ms)} s of audio, ` +
                  `${st.redactions ?? 0} redactions, ${sec(st.masked_ms)} s masked`, 'idle');
        break;
      }
      default: break;
    }
  }

  function updateMeter(r, now = false) {
    if (r.meterTimer && !now) return;
    const draw = () => {
      r.meterTimer = 0;
      ui.sent.textContent = (r.sentSamples / r.rate).toFixed(1);
      ui.received.textContent = (r.receivedSamples / r.rate).toFixed(1);
    };
    if (now) draw();
    else r.meterTimer = setTimeout(draw, 250);
  }

  function stopCapture(r) {
    if (r.node) r.node.port.postMessage('stop');
    if (r.source) {
      try { r.source.onended = null; r.source.disconnect(); } catch { /* not connected */ }
      if (r.source instanceof AudioBufferSourceNode) {
        try { r.source.stop(); } catch { /* not started */ }
      }
    }
    if (r.stream) for (const t of r.stream.getTracks()) t.stop();
  }

  // End of input: stop capturing, ask the server to drain and close.
  function finishInput(r, why) {
    if (r.inputDone) return;
    r.inputDone = true;
    stopCapture(r);
    if (r.ws && r.ws.readyState === WebSocket.OPEN) {
      // After the worklet's last frame: it answers 'stopped' once flushed.
      const send = () => {
        if (r.ws.readyState === WebSocket.OPEN) r.ws.send(JSON.stringify({ type: 'close' }));
      };
      if (r.node) {
        const prev = r.node.port.onmessage;
        r.node.port.onmessage = (e) => {
          prev(e);
          if (e.data.type === 'stopped') send();
        };
      } else {
        send();
      }
      if (!r.errorShown) setStatus(`${why} — finishing: the last ${r.config.delay_ms || ''} ms ` +
                                   'of delayed audio is on its way…', 'live');
    } else {
      cleanup(r);
    }
  }

  function onClosed(r, e) {
    ui.partial.replaceChildren();
    updateMeter(r, true);
    if (!r.inputDone) {
      r.inputDone = true;
      stopCapture(r);
    }
    if (!r.errorShown && e.code !== 1000) {
      r.errorShown = true;
      setStatus(`Connection closed (code ${e.code}${e.reason ? ': ' + e.reason : ''})`, 'error');
    }
    // Let the scheduled redacted audio finish before closing the context.
    const wait = Math.min(15, r.player.remaining() + 0.2);
    setTimeout(() => cleanup(r), wait * 1000);
    if (run === r) {
      run = null;
      setRunning(false);
    }
  }

  function fail(r, text) {
    r.errorShown = true;
    setStatus(text, 'error');
    stopCapture(r);
    if (r.ws && r.ws.readyState <= WebSocket.OPEN) r.ws.close();
    cleanup(r);
  }

  function cleanup(r) {
    if (r.ctx.state !== 'closed') r.ctx.close().catch(() => {});
    if (run === r) {
      run = null;
      setRunning(false);
    }
  }

  // ------------------------------------------------------------- controls
  ui.delay.addEventListener('input', () => { ui.delayValue.textContent = `${ui.delay.value} ms`; });
  ui.form.addEventListener('submit', (e) => { e.preventDefault(); start(); });
  ui.stop.addEventListener('click', () => { if (run) finishInput(run, 'Stopped'); });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && run) finishInput(run, 'Stopped');
  });
  const preset = new URLSearchParams(location.search);
  if (preset.get('source') === 'sample') $('source-sample').checked = true;
})();
