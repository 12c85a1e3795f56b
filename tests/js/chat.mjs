// The AI SDK's own chat (AbstractChat + DefaultChatTransport: what React's useChat
// wraps, with a plain ChatState like React's) against a server, from the command line:
//   node chat.mjs send   <api> <chat id> <text>
//   node chat.mjs resume <api> <chat id> <messages JSON>
// prints {status, error, messages} as JSON.
import { AbstractChat, DefaultChatTransport } from "ai";

class State {
  constructor(messages) { this.messages = messages; this.status = "ready"; this.error = undefined; }
  pushMessage = (m) => { this.messages = this.messages.concat(m); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (i, m) => {
    this.messages = [...this.messages.slice(0, i), this.snapshot(m), ...this.messages.slice(i + 1)];
  };
  snapshot = (v) => structuredClone(v);
}

class Chat extends AbstractChat {
  constructor({ messages = [], ...options }) { super({ ...options, state: new State(messages) }); }
}

const [mode, api, id, arg] = process.argv.slice(2);
let error;
const chat = new Chat({
  id,
  messages: mode === "resume" ? JSON.parse(arg) : [],
  transport: new DefaultChatTransport({ api }),
  onError: (e) => { error = String(e.message || e); },
});
if (mode === "send") await chat.sendMessage({ text: arg });
else await chat.resumeStream();
process.stdout.write(JSON.stringify({ status: chat.status, error: error ?? null, messages: chat.messages }));
