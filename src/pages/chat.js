// Browser chat client served at "/".
//
// The session lives in the HttpOnly `access_token` cookie that POST /token
// sets, so this script never sees or stores the token: fetch() sends the
// cookie (same origin) and so does the WebSocket handshake. Server data is
// only ever put into the page with textContent and DOM nodes, never as HTML.
'use strict';

(() => {
  const HISTORY_PAGE = 20;
  const MAX_MESSAGE_CHARS = 4096;
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  // A link to a shared file: "/files/<id>" at the start of the text or after
  // a space or an opening bracket.
  const FILE_LINK = /(^|[\s([{])(\/files\/[A-Za-z0-9_-]+)/g;

  // Why the server closed the socket, by close code; null means "say nothing".
  const CLOSE_REASONS = {
    1000: null,
    1001: 'The server is restarting.',
    1002: 'The connection broke a protocol rule.',
    1003: 'The server only accepts text messages.',
    1007: 'A message was not valid text (UTF-8).',
    1008: 'Disconnected for sending messages too fast.',
    1009: 'A message was too large.',
    1011: 'The server had an internal error.',
    4002: 'Disconnected because the connection could not keep up with the chat.',
  };
  // Error events that announce the server's close of the socket: the close
  // handler says why, once, so these are not shown on their own.
  const CLOSING_ERRORS = new Set([
    'server_shutdown', 'protocol_error', 'binary_not_supported', 'invalid_utf8',
    'message_too_large', 'internal_error', 'token_expired', 'slow_consumer',
  ]);

  const el = (id) => document.getElementById(id);
  const ui = {
    account: el('account'),
    meName: el('me-name'),
    logout: el('logout'),
    auth: el('auth'),
    authNotice: el('auth-notice'),
    loginForm: el('login-form'),
    loginUser: el('login-username'),
    loginPass: el('login-password'),
    loginError: el('login-error'),
    registerForm: el('register-form'),
    registerUser: el('register-username'),
    registerPass: el('register-password'),
    registerError: el('register-error'),
    chat: el('chat'),
    connStatus: el('conn-status'),
    reconnectNow: el('reconnect-now'),
    online: el('online'),
    log: el('log'),
    loadOlder: el('load-older'),
    messages: el('messages'),
    announcer: el('announcer'),
    sendForm: el('send-form'),
    input: el('message-input'),
    uploadForm: el('upload-form'),
    fileInput: el('file-input'),
    uploadButton: el('upload-button'),
    progress: el('upload-progress'),
    uploadStatus: el('upload-status'),
  };

  const state = {
    me: null,            // {id, username, created_at} while logged in
    ws: null,            // the current socket; a socket that is not this one is stale
    retries: 0,          // failed connection attempts since the last open socket
    retryTimer: 0,
    shown: new Set(),    // ids of the stored messages on screen
    oldestId: null,      // lowest message id shown, for "Load older"
    newestId: null,      // highest message id shown, to catch up after a reconnect
    pending: [],         // messages sent and not yet acknowledged: [{text, li}]
    hadSocket: false,    // whether a socket was open before (then reconnects reload history)
  };

  // ---- HTTP ----

  // Calls the API on this origin; resolves to {status, data} where data is
  // the parsed JSON body, or null. Network failures resolve to status 0.
  async function api(method, path, body, contentType) {
    const init = { method, credentials: 'same-origin', headers: {} };
    if (body !== undefined) {
      init.body = body;
      if (contentType) init.headers['Content-Type'] = contentType;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      return { status: 0, data: { detail: 'The server cannot be reached.' } };
    }
    let data = null;
    if ((response.headers.get('Content-Type') || '').includes('json')) {
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
    }
    return { status: response.status, data };
  }

  function detailOf(result, fallback) {
    if (result.data && typeof result.data.detail === 'string') return result.data.detail;
    return fallback || ('Request failed (HTTP ' + result.status + ').');
  }

  // ---- screens ----

  function showAuth(notice) {
    disconnect();
    state.me = null;
    ui.account.hidden = true;
    ui.chat.hidden = true;
    ui.auth.hidden = false;
    ui.authNotice.textContent = notice || '';
    ui.authNotice.hidden = !notice;
    ui.loginPass.value = '';
    ui.registerPass.value = '';
    ui.loginUser.focus();
  }

  function showChat(user) {
    state.me = user;
    ui.meName.textContent = user.username;
    ui.account.hidden = false;
    ui.auth.hidden = true;
    ui.authNotice.hidden = true;
    ui.chat.hidden = false;
    clearMessages();
    setStatus('Connecting…');
    ui.input.focus();
    loadRecent().then(connect);
  }

  // The session ended on the server's side (token expired or was refused).
  function sessionExpired() {
    showAuth('Your session has expired. Please log in again.');
  }

  // ---- log in, register, log out ----

  async function logIn(username, password) {
    const form = new URLSearchParams({ username, password });
    const result = await api('POST', '/token', form.toString(), 'application/x-www-form-urlencoded');
    if (result.status !== 200) {
      return result.status === 401
        ? 'Wrong username or password.'
        : detailOf(result);
    }
    const me = await api('GET', '/me');
    if (me.status !== 200) return detailOf(me, 'Logged in, but the account could not be read.');
    showChat(me.data);
    return null;
  }

  async function onLogin(event) {
    event.preventDefault();
    ui.loginError.textContent = '';
    const username = ui.loginUser.value.trim();
    const password = ui.loginPass.value;
    if (!username || !password) {
      ui.loginError.textContent = 'Enter your username and password.';
      return;
    }
    const error = await withBusy(ui.loginForm, () => logIn(username, password));
    if (error) ui.loginError.textContent = error;
  }

  async function onRegister(event) {
    event.preventDefault();
    ui.registerError.textContent = '';
    const username = ui.registerUser.value.trim();
    const password = ui.registerPass.value;
    const problem = checkNewAccount(username, password);
    if (problem) {
      ui.registerError.textContent = problem;
      return;
    }
    const error = await withBusy(ui.registerForm, async () => {
      const result = await api('POST', '/register', JSON.stringify({ username, password }), 'application/json');
      if (result.status === 409) return 'That username is already taken.';
      if (result.status !== 201) return detailOf(result);
      return logIn(username, password);
    });
    if (error) ui.registerError.textContent = error;
  }

  // The server checks the same rules; this only saves a round trip.
  function checkNewAccount(username, password) {
    if (!/^[A-Za-z0-9_.-]{1,32}$/.test(username)) {
      return 'The username must be 1 to 32 letters, digits, "_", "." or "-".';
    }
    const bytes = new TextEncoder().encode(password).length;
    if (bytes < 4 || bytes > 72) return 'The password must be 4 to 72 bytes long.';
    return null;
  }

  // Disables a form's buttons while `work` runs, so a double click sends once.
  async function withBusy(form, work) {
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      return await work();
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  async function onLogout() {
    disconnect();
    await api('POST', '/logout');
    clearMessages();
    showAuth('You are logged out.');
  }

  // ---- messages on screen ----

  function clearMessages() {
    ui.messages.replaceChildren();
    state.shown.clear();
    state.oldestId = null;
    state.newestId = null;
    state.pending = [];
    ui.loadOlder.hidden = true;
  }

  function isNearBottom() {
    const log = ui.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  }

  function scrollToBottom() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function formatTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (date.toDateString() === new Date().toDateString()) return time;
    return date.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + time;
  }

  // Appends `text` to `parent`, turning "/files/<id>" into links.
  function appendLinkified(parent, text) {
    let last = 0;
    FILE_LINK.lastIndex = 0;
    for (let m = FILE_LINK.exec(text); m; m = FILE_LINK.exec(text)) {
      const start = m.index + m[1].length;
      parent.append(text.slice(last, start));
      const link = document.createElement('a');
      link.href = m[2];
      link.textContent = m[2];
      parent.append(link);
      last = start + m[2].length;
    }
    parent.append(text.slice(last));
  }

  function messageItem(msg) {
    const li = document.createElement('li');
    li.className = 'msg';
    if (state.me && msg.username === state.me.username) li.classList.add('mine');
    const user = document.createElement('span');
    user.className = 'msg-user';
    user.textContent = msg.username;
    user.dir = 'auto'; // user-supplied text is isolated: it cannot reorder what is around it
    const time = document.createElement('time');
    time.className = 'msg-time';
    if (msg.created_at) {
      time.dateTime = msg.created_at;
      time.textContent = formatTime(msg.created_at);
      time.title = new Date(msg.created_at).toLocaleString();
    }
    const text = document.createElement('span');
    text.className = 'msg-text';
    text.dir = 'auto';
    appendLinkified(text, msg.content);
    li.append(user, time, text);
    return li;
  }

  // Puts a stored message in its place by id, so history pages and live
  // events may arrive in any order and overlap. A newer message than any
  // shown goes to the end, above our own still-unacknowledged messages.
  function insertMessage(msg) {
    if (typeof msg.id !== 'number' || state.shown.has(msg.id)) return false;
    state.shown.add(msg.id);
    const li = messageItem(msg);
    li.dataset.id = String(msg.id);
    let newest = true;
    let previous = null;
    for (let node = ui.messages.lastElementChild; node; node = node.previousElementSibling) {
      if (!node.dataset.id) continue;
      if (Number(node.dataset.id) < msg.id) {
        previous = node;
        break;
      }
      newest = false;
    }
    if (newest) {
      let firstPending = null;
      for (let node = ui.messages.lastElementChild; node && node.classList.contains('pending'); node = node.previousElementSibling) {
        firstPending = node;
      }
      ui.messages.insertBefore(li, firstPending);
    } else {
      ui.messages.insertBefore(li, previous ? previous.nextSibling : ui.messages.firstChild);
    }
    if (state.oldestId === null || msg.id < state.oldestId) state.oldestId = msg.id;
    if (state.newestId === null || msg.id > state.newestId) state.newestId = msg.id;
    return true;
  }

  function addEvent(text, isError) {
    const li = document.createElement('li');
    li.className = isError ? 'event error' : 'event';
    li.textContent = text;
    const stick = isNearBottom();
    ui.messages.append(li);
    if (stick) scrollToBottom();
    announce(text);
  }

  function announce(text) {
    const line = document.createElement('p');
    line.textContent = text;
    ui.announcer.append(line);
    while (ui.announcer.childElementCount > 5) ui.announcer.firstElementChild.remove();
  }

  // ---- history ----

  async function getHistory(path) {
    const result = await api('GET', path);
    if (result.status === 401) {
      sessionExpired();
      return null;
    }
    const messages = Array.isArray(result.data) ? result.data : result.data && result.data.messages;
    if (result.status !== 200 || !Array.isArray(messages)) {
      addEvent('Could not load messages: ' + detailOf(result), true);
      return null;
    }
    return { messages, hasMore: Boolean(result.data.has_more) };
  }

  // Shows the newest messages. After a reconnect it also reads back until it
  // meets what was already shown, because the socket does not replay what
  // was said while we were away (bounded, so a long absence stays cheap).
  async function loadRecent() {
    const firstLoad = state.oldestId === null;
    const newestKnown = state.newestId;
    const stick = firstLoad || isNearBottom();
    const page = await getHistory('/history/last20');
    if (!page) return;
    page.messages.forEach(insertMessage);
    if (firstLoad) ui.loadOlder.hidden = page.messages.length < HISTORY_PAGE;
    let oldest = page.messages.length ? page.messages[0].id : null;
    for (let pages = 0; newestKnown !== null && oldest !== null && oldest > newestKnown + 1 && pages < 10; pages += 1) {
      const older = await getHistory('/history?before_id=' + oldest + '&limit=100');
      if (!older || !older.messages.length) break;
      older.messages.forEach(insertMessage);
      oldest = older.messages[0].id;
    }
    if (stick) scrollToBottom();
  }

  async function loadOlder() {
    if (state.oldestId === null) return;
    ui.loadOlder.disabled = true;
    const page = await getHistory('/history?before_id=' + state.oldestId + '&limit=' + HISTORY_PAGE);
    ui.loadOlder.disabled = false;
    if (!page) return;
    // Keep the view where it was: the new rows go above it.
    const fromBottom = ui.log.scrollHeight - ui.log.scrollTop;
    page.messages.forEach(insertMessage);
    ui.log.scrollTop = ui.log.scrollHeight - fromBottom;
    ui.loadOlder.hidden = !page.hasMore;
    announce(page.messages.length + ' older messages loaded.');
    if (ui.loadOlder.hidden) ui.log.focus();
  }

  // ---- live chat ----

  function socketUrl() {
    return (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws/chat';
  }

  function setStatus(text, kind) {
    ui.connStatus.textContent = text;
    ui.connStatus.className = kind || '';
  }

  function connect() {
    if (!state.me) return;
    clearTimeout(state.retryTimer);
    ui.reconnectNow.hidden = true;
    setStatus(state.hadSocket ? 'Reconnecting…' : 'Connecting…');
    const ws = new WebSocket(socketUrl());
    state.ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      if (state.ws !== ws) return;
      opened = true;
      state.retries = 0;
      setStatus('Connected', 'connected');
      // Messages sent while we were away are not replayed by the socket.
      if (state.hadSocket) loadRecent();
      state.hadSocket = true;
    });
    ws.addEventListener('message', (event) => {
      if (state.ws !== ws) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      onEvent(data);
    });
    ws.addEventListener('close', (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      onClose(event.code, opened);
    });
  }

  // Closes the socket on purpose: no reconnect follows. The status line and
  // the online count are reset at once, since the close event of a socket
  // closed on purpose is ignored: a later login must not show them stale.
  function disconnect() {
    clearTimeout(state.retryTimer);
    ui.reconnectNow.hidden = true;
    const ws = state.ws;
    state.ws = null;
    state.hadSocket = false;
    if (ws) ws.close(1000);
    setStatus('Not connected');
    ui.online.textContent = 'online: –';
  }

  async function onClose(code, opened) {
    failPending();
    ui.online.textContent = 'online: –';
    if (code === 4001) {
      sessionExpired();
      return;
    }
    if (!opened) {
      // The handshake was refused or the server is down: a refused token
      // looks the same as a network error from here, so ask.
      const me = await api('GET', '/me');
      if (me.status === 401) {
        sessionExpired();
        return;
      }
    }
    const reason = CLOSE_REASONS[code];
    if (reason) addEvent(reason, code !== 1001);
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (!state.me) return;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.retries);
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    state.retries += 1;
    setStatus('Disconnected. Reconnecting in ' + Math.ceil(delay / 1000) + ' s…', 'trouble');
    ui.reconnectNow.hidden = false;
    state.retryTimer = setTimeout(connect, delay);
  }

  function onEvent(event) {
    switch (event.type) {
      case 'message':
        onChatMessage(event);
        break;
      case 'join':
      case 'leave':
        ui.online.textContent = 'online: ' + event.online;
        if (!(event.type === 'join' && state.me && event.username === state.me.username)) {
          addEvent(event.username + (event.type === 'join' ? ' joined' : ' left'));
        }
        break;
      case 'error':
        if (CLOSING_ERRORS.has(event.code)) break;
        addEvent('Error: ' + (event.detail || event.code), true);
        if (event.code === 'rate_limited' || event.code === 'empty_message' || event.code === 'message_too_long') {
          failOldestPending();
        }
        break;
      default:
        break;
    }
  }

  function onChatMessage(msg) {
    const stick = isNearBottom();
    const mine = state.me && msg.username === state.me.username;
    if (mine) acknowledge(msg.content);
    if (insertMessage(msg)) {
      if (!mine) announce(msg.username + ': ' + msg.content);
      if (stick || mine) scrollToBottom();
    }
  }

  // ---- sending ----

  function send(text) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      addEvent('Not connected: the message was not sent.', true);
      return false;
    }
    ws.send(text);
    const li = messageItem({ username: state.me.username, content: text, created_at: '' });
    li.classList.add('pending');
    const note = document.createElement('span');
    note.className = 'msg-state';
    note.textContent = 'sending…';
    li.append(note);
    ui.messages.append(li);
    state.pending.push({ text, li });
    scrollToBottom();
    return true;
  }

  // The server echoes our own message with its id: that is the
  // acknowledgement, and the stored copy replaces the pending one.
  function acknowledge(content) {
    const index = state.pending.findIndex((p) => p.text === content);
    if (index === -1) return;
    state.pending[index].li.remove();
    state.pending.splice(index, 1);
  }

  function markFailed(entry) {
    entry.li.classList.remove('pending');
    entry.li.classList.add('failed');
    const note = entry.li.querySelector('.msg-state');
    note.textContent = 'not sent';
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.className = 'secondary';
    retry.textContent = 'Retry';
    retry.setAttribute('aria-label', 'Send again: ' + entry.text.slice(0, 60));
    retry.addEventListener('click', () => {
      if (send(entry.text)) entry.li.remove();
    });
    note.append(retry);
  }

  function failOldestPending() {
    const entry = state.pending.shift();
    if (entry) markFailed(entry);
  }

  // Without an acknowledgement we cannot know whether a message was stored;
  // the reload of history after reconnecting shows it if it was.
  function failPending() {
    state.pending.forEach(markFailed);
    state.pending = [];
  }

  function onSend(event) {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text) return;
    if ([...text].length > MAX_MESSAGE_CHARS) {
      addEvent('A message can have at most ' + MAX_MESSAGE_CHARS + ' characters.', true);
      return;
    }
    if (send(text)) ui.input.value = '';
    ui.input.focus();
  }

  function onComposerKey(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.sendForm.requestSubmit();
    }
  }

  // ---- files ----

  function formatSize(bytes) {
    const units = ['bytes', 'KiB', 'MiB', 'GiB'];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit === 0 ? value : value.toFixed(1)) + ' ' + units[unit];
  }

  // XMLHttpRequest rather than fetch() because it reports upload progress.
  function uploadFile(file) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      const body = new FormData();
      body.append('file', file, file.name);
      xhr.open('POST', '/files/upload');
      xhr.withCredentials = true;
      xhr.responseType = 'json';
      xhr.upload.addEventListener('progress', (event) => {
        if (event.lengthComputable) ui.progress.value = Math.floor((event.loaded / event.total) * 100);
      });
      xhr.addEventListener('load', () => resolve({ status: xhr.status, data: xhr.response }));
      xhr.addEventListener('error', () => resolve({ status: 0, data: { detail: 'The upload was interrupted.' } }));
      xhr.send(body);
    });
  }

  async function onUpload(event) {
    event.preventDefault();
    const file = ui.fileInput.files[0];
    if (!file) {
      ui.uploadStatus.textContent = 'Choose a file first.';
      ui.fileInput.focus();
      return;
    }
    ui.uploadButton.disabled = true;
    ui.progress.value = 0;
    ui.progress.hidden = false;
    const name = document.createElement('bdi');
    name.textContent = file.name;
    ui.uploadStatus.replaceChildren('Uploading ', name, '…');
    const result = await uploadFile(file);
    ui.uploadButton.disabled = false;
    ui.progress.hidden = true;
    if (result.status === 401) {
      sessionExpired();
      return;
    }
    if (result.status !== 201 || !result.data) {
      ui.uploadStatus.textContent = result.status === 413
        ? 'The file is too large for this server.'
        : 'Upload failed: ' + detailOf(result);
      return;
    }
    ui.uploadForm.reset();
    const info = result.data;
    const link = document.createElement('a');
    link.href = info.download_url;
    link.textContent = info.filename;
    link.dir = 'auto';
    ui.uploadStatus.replaceChildren('Uploaded ', link, ' (' + formatSize(info.size) + ').');
    if (!send('Shared a file: ' + info.filename + ' (' + formatSize(info.size) + ') ' + info.download_url)) {
      ui.uploadStatus.append(' It was not posted to the chat because the connection is down.');
    }
  }

  // ---- start ----

  async function start() {
    ui.loginForm.addEventListener('submit', onLogin);
    ui.registerForm.addEventListener('submit', onRegister);
    ui.logout.addEventListener('click', onLogout);
    ui.sendForm.addEventListener('submit', onSend);
    ui.input.addEventListener('keydown', onComposerKey);
    ui.loadOlder.addEventListener('click', loadOlder);
    ui.uploadForm.addEventListener('submit', onUpload);
    ui.reconnectNow.addEventListener('click', () => {
      state.retries = 0;
      connect();
    });

    const me = await api('GET', '/me');
    if (me.status === 200 && me.data) {
      showChat(me.data);
    } else {
      showAuth(me.status === 0 || me.status >= 500 ? detailOf(me) : '');
    }
  }

  start();
})();
