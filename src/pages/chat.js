// Browser chat client served at "/".
//
// The session lives in the HttpOnly `access_token` cookie that POST /token
// sets, so this script never sees or stores the token: fetch() sends the
// cookie (same origin) and so does the WebSocket handshake. Before the token
// expires the page asks for a new one (POST /token/refresh, which resets the
// cookie), so an open page stays logged in up to the session's absolute
// limit. Server data is only ever put into the page with textContent and DOM
// nodes, never as HTML.
'use strict';

(() => {
  const HISTORY_PAGE = 20;
  const MAX_MESSAGE_CHARS = 4096;
  // Reconnecting waits 0.5 s, then twice as long after each failure, up to 10 s.
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  // A refresh that fails for want of a network is tried again this soon.
  const REFRESH_RETRY_MS = 5000;

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
    'session_revoked',
  ]);

  const el = (id) => document.getElementById(id);
  const ui = {
    account: el('account'),
    meName: el('me-name'),
    logout: el('logout'),
    logoutAll: el('logout-all'),
    sessions: el('sessions'),
    sessionList: el('session-list'),
    sessionsStatus: el('sessions-status'),
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
    myFiles: el('my-files'),
    myFilesList: el('my-files-list'),
    myFilesStatus: el('my-files-status'),
  };

  const state = {
    me: null,            // {id, username, created_at} while logged in
    ws: null,            // the current socket; a socket that is not this one is stale
    retries: 0,          // failed connection attempts since the last open socket
    retryTimer: 0,
    countdown: 0,        // the interval that counts the wait down on screen
    shown: new Set(),    // ids of the stored messages on screen
    oldestId: null,      // lowest message id shown, for "Load older"
    newestId: null,      // highest message id shown, to catch up after a reconnect
    pending: [],         // messages sent and not yet acknowledged: [{text, li}]
    hadSocket: false,    // whether a socket was open before (then it is a reconnect)
    epoch: null,         // the database's epoch (X-Chat-Epoch) the shown ids belong to
    refreshTimer: 0,
    refreshDue: 0,       // Date.now() by which the token should be refreshed
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
    return { status: response.status, data, epoch: response.headers.get('X-Chat-Epoch') };
  }

  function detailOf(result, fallback) {
    if (result.data && typeof result.data.detail === 'string') return result.data.detail;
    return fallback || ('Request failed (HTTP ' + result.status + ').');
  }

  // ---- screens ----

  function showAuth(notice) {
    disconnect();
    stopRefreshing();
    state.me = null;
    ui.sessions.open = false;
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
    loadMyFiles();
  }

  // The session ended on the server's side (token expired or was refused).
  function sessionExpired() {
    showAuth('Your session has expired. Please log in again.');
  }

  // The session was ended on purpose: here, or from another browser.
  function sessionRevoked() {
    showAuth('You were logged out: this session was ended. Please log in again.');
  }

  // ---- keeping the session alive ----

  // Asks for the next token halfway through this one's life, so that a
  // late timer (a sleeping laptop, a background tab) still has time left.
  function scheduleRefresh(expiresIn) {
    clearTimeout(state.refreshTimer);
    const delay = Math.max(1000, (expiresIn * 1000) / 2);
    state.refreshDue = Date.now() + delay;
    state.refreshTimer = setTimeout(refreshToken, delay);
  }

  function stopRefreshing() {
    clearTimeout(state.refreshTimer);
    state.refreshDue = 0;
  }

  async function refreshToken() {
    if (!state.me) return;
    const result = await api('POST', '/token/refresh');
    if (!state.me) return;
    if (result.status === 200 && result.data) {
      scheduleRefresh(result.data.expires_in);
    } else if (result.status === 401) {
      sessionExpired();
    } else {
      clearTimeout(state.refreshTimer);
      state.refreshTimer = setTimeout(refreshToken, REFRESH_RETRY_MS);
    }
  }

  // Timers of hidden tabs may run late: catch up as soon as the page shows.
  function onVisible() {
    if (document.visibilityState === 'visible' && state.refreshDue && Date.now() >= state.refreshDue) {
      refreshToken();
    }
  }

  // ---- sessions ----

  async function loadSessions() {
    ui.sessionsStatus.textContent = 'Loading…';
    const result = await api('GET', '/sessions');
    if (result.status === 401) {
      sessionExpired();
      return;
    }
    if (result.status !== 200 || !Array.isArray(result.data)) {
      ui.sessionsStatus.textContent = 'Could not list the sessions: ' + detailOf(result);
      return;
    }
    ui.sessionList.replaceChildren(...result.data.map(sessionItem));
    ui.sessionsStatus.textContent = result.data.length === 1 ? 'One session.' : result.data.length + ' sessions.';
  }

  function sessionItem(session) {
    const li = document.createElement('li');
    const what = document.createElement('span');
    what.className = 'session-what';
    const agent = document.createElement('bdi');
    agent.textContent = session.user_agent || 'unknown browser';
    what.append(agent, ' from ' + session.ip + ', since ' + formatTime(session.created_at)
      + ', last used ' + formatTime(session.last_used_at));
    li.append(what);
    if (session.current) {
      const mark = document.createElement('strong');
      mark.textContent = ' (this browser)';
      li.append(mark);
    }
    const end = document.createElement('button');
    end.type = 'button';
    end.className = 'secondary';
    end.textContent = 'End';
    end.setAttribute('aria-label', 'End the session of ' + (session.user_agent || 'unknown browser') + ' from ' + session.ip);
    end.addEventListener('click', () => endSession(session));
    li.append(end);
    return li;
  }

  async function endSession(session) {
    const result = await api('DELETE', '/sessions/' + encodeURIComponent(session.id));
    if (session.current && (result.status === 204 || result.status === 401)) {
      sessionRevoked();
      return;
    }
    if (result.status !== 204 && result.status !== 404) {
      ui.sessionsStatus.textContent = 'Could not end the session: ' + detailOf(result);
      return;
    }
    loadSessions();
  }

  async function onLogoutAll() {
    disconnect();
    await api('POST', '/logout/all');
    clearMessages();
    showAuth('You are logged out everywhere.');
  }

  // ---- log in, register, log out ----

  async function logIn(username, password) {
    const form = new URLSearchParams({ username, password });
    const result = await api('POST', '/token', form.toString(), 'application/x-www-form-urlencoded');
    if (result.status !== 200) {
      if (result.status === 401) return 'Wrong username or password.';
      if (result.status === 429) return 'Too many failed attempts. ' + detailOf(result);
      return detailOf(result);
    }
    const me = await api('GET', '/me');
    if (me.status !== 200) return detailOf(me, 'Logged in, but the account could not be read.');
    showChat(me.data);
    scheduleRefresh(result.data.expires_in);
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

  // A user-supplied name, isolated so that its direction can never reorder
  // the text around it.
  function isolated(text, className) {
    const bdi = document.createElement('bdi');
    if (className) bdi.className = className;
    bdi.textContent = text;
    return bdi;
  }

  // The download link of a file: its name, then its size.
  function fileLink(file) {
    const link = document.createElement('a');
    link.href = file.download_url;
    link.download = '';
    link.append(isolated(file.filename));
    return [link, ' (' + formatSize(file.size) + ')'];
  }

  function messageItem(msg) {
    const li = document.createElement('li');
    li.className = 'msg';
    if (state.me && msg.username === state.me.username) li.classList.add('mine');
    const user = document.createElement('bdi');
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
    if (msg.file) {
      // A file message: its content is the file's name, shown as the link.
      li.classList.add('file');
      text.append('Shared a file: ', ...fileLink(msg.file));
    } else {
      text.textContent = msg.content;
    }
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
    if (result.epoch) state.epoch = result.epoch;
    return { messages, hasMore: Boolean(result.data.has_more) };
  }

  // Shows the newest messages. What is said after them comes over the
  // socket, which resumes after the newest one shown (see socketUrl).
  async function loadRecent() {
    const page = await getHistory('/history/last20');
    if (!page) return;
    page.messages.forEach(insertMessage);
    ui.loadOlder.hidden = page.messages.length < HISTORY_PAGE;
    scrollToBottom();
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

  // The socket resumes after the newest message shown: the server replays
  // everything after it, then goes live, each message exactly once, so a
  // dropped connection or a server restart loses and repeats nothing. The
  // epoch makes the server answer `resync` if the database was restored.
  function socketUrl() {
    let query = '?after_id=' + (state.newestId === null ? 0 : state.newestId);
    if (state.epoch) query += '&epoch=' + encodeURIComponent(state.epoch);
    return (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws/chat' + query;
  }

  function setStatus(text, kind) {
    ui.connStatus.textContent = text;
    ui.connStatus.className = kind || '';
  }

  function connect() {
    if (!state.me) return;
    stopRetry();
    setStatus(state.hadSocket ? 'Reconnecting…' : 'Connecting…');
    const ws = new WebSocket(socketUrl());
    state.ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      if (state.ws !== ws) return;
      opened = true;
      state.retries = 0;
      setStatus('Connected', 'connected');
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
    stopRetry();
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
    if (code === 4003) {
      sessionRevoked();
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

  // Waits, counting down on screen, then connects again.
  function scheduleReconnect() {
    if (!state.me) return;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.retries);
    state.retries += 1;
    const due = Date.now() + delay;
    const show = () => {
      const left = Math.max(0, due - Date.now()) / 1000;
      setStatus('Disconnected. Reconnecting in ' + left.toFixed(1) + ' s…', 'trouble');
    };
    show();
    ui.reconnectNow.hidden = false;
    state.countdown = setInterval(show, 100);
    state.retryTimer = setTimeout(connect, delay);
  }

  function stopRetry() {
    clearTimeout(state.retryTimer);
    clearInterval(state.countdown);
    ui.reconnectNow.hidden = true;
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
      case 'resync':
        // Too much was missed to replay, or the database was restored: start
        // again from the newest page; live messages carry on after it.
        clearMessages();
        loadRecent();
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
    // Uploaded files are private: sharing posts the file message in the room.
    const shared = await api('POST', '/files/' + encodeURIComponent(info.id) + '/share');
    if (shared.status === 201) {
      ui.uploadStatus.replaceChildren('Shared ', isolated(info.filename), ' in the room.');
    } else {
      ui.uploadStatus.replaceChildren('Uploaded ', isolated(info.filename),
        ' but could not share it: ' + detailOf(shared) + ' It stays private; see Your files.');
    }
    loadMyFiles();
  }

  // ---- the user's own files ----

  // Lists the user's files with their state: private or shared in the room,
  // and how many share links are live.
  async function loadMyFiles() {
    const result = await api('GET', '/files?scope=mine&limit=100');
    if (result.status !== 200 || !Array.isArray(result.data)) {
      ui.myFilesStatus.textContent = 'Your files could not be listed: ' + detailOf(result);
      return;
    }
    const links = await Promise.all(result.data.map((file) =>
      api('GET', '/files/' + encodeURIComponent(file.id) + '/links')));
    const items = result.data.map((file, i) => myFileItem(file, Array.isArray(links[i].data) ? links[i].data.length : 0));
    ui.myFilesList.replaceChildren(...items);
    ui.myFiles.querySelector('summary').textContent = 'Your files (' + result.data.length + ')';
  }

  function myFileItem(file, linkCount) {
    const li = document.createElement('li');
    li.dataset.id = file.id;
    const stateText = (file.shared ? 'shared' : 'private')
      + (linkCount ? ', ' + linkCount + (linkCount === 1 ? ' link' : ' links') : '');
    const badge = document.createElement('span');
    badge.className = 'file-state';
    badge.textContent = stateText;
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.className = 'secondary copy-link';
    copy.textContent = 'Copy link';
    copy.addEventListener('click', () => copyLink(file));
    li.append(...fileLink(file), ' ', badge, ' ', copy);
    if (!file.shared) {
      const share = document.createElement('button');
      share.type = 'button';
      share.className = 'secondary share-file';
      share.textContent = 'Share in the room';
      share.addEventListener('click', async () => {
        const result = await api('POST', '/files/' + encodeURIComponent(file.id) + '/share');
        if (result.status !== 201) ui.myFilesStatus.textContent = 'Could not share it: ' + detailOf(result);
        loadMyFiles();
      });
      li.append(' ', share);
    }
    return li;
  }

  // Creates a share link (valid for a day) and copies it; where the
  // clipboard is refused, the link is shown to copy by hand.
  async function copyLink(file) {
    const result = await api('POST', '/files/' + encodeURIComponent(file.id) + '/links', '{}', 'application/json');
    if (result.status !== 201 || !result.data) {
      ui.myFilesStatus.textContent = 'No link was made: ' + detailOf(result);
      return;
    }
    const url = new URL(result.data.url, window.location.origin).href;
    const until = new Date(result.data.expires_at).toLocaleString();
    const shown = document.createElement('input');
    shown.type = 'text';
    shown.readOnly = true;
    shown.className = 'share-link';
    shown.value = url;
    shown.setAttribute('aria-label', 'Share link');
    let copied = false;
    try {
      await navigator.clipboard.writeText(url);
      copied = true;
    } catch (err) {
      copied = false;
    }
    ui.myFilesStatus.replaceChildren(
      (copied ? 'Link copied' : 'Copy this link') + ' for ', isolated(file.filename),
      ' (anyone with it can download the file until ' + until + '): ', shown);
    if (!copied) shown.select();
    loadMyFiles();
  }

  // ---- start ----

  async function start() {
    ui.loginForm.addEventListener('submit', onLogin);
    ui.registerForm.addEventListener('submit', onRegister);
    ui.logout.addEventListener('click', onLogout);
    ui.logoutAll.addEventListener('click', onLogoutAll);
    ui.sessions.addEventListener('toggle', () => {
      if (ui.sessions.open) loadSessions();
    });
    document.addEventListener('visibilitychange', onVisible);
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
      // The cookie's expiry is not visible from here: a refresh now says it.
      refreshToken();
    } else {
      showAuth(me.status === 0 || me.status >= 500 ? detailOf(me) : '');
    }
  }

  start();
})();
