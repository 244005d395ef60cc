import { connect, Client, SwitchboardError, type Envelope, type StateDetail } from "./client.js";
const c: Client = connect("https://push.example.com", { rooms: ["a"], token: async () => "t", transports: ["sse", "longpoll"], backoff: { max: 1000 } });
c.on("open", (d: StateDetail) => console.log(d.transport, d.recovered));
c.on("fallback", (d) => console.log(d.from, d.to));
c.on<{ price: number }>("message", (env: Envelope<{ price: number }>) => console.log(env.data?.price));
c.publish("a", { x: 1 }).then((ack) => ack.id).catch((e: SwitchboardError) => e.code);
c.send({ type: "typing", room: "a" }, { reply: false });
const s: "idle" | "connecting" | "open" | "reconnecting" | "closed" = c.state;
c.close();
c.publish("a", 1, (err, ack) => console.log(err ? err.code : ack?.id));
c.join("b", (err: SwitchboardError | null) => console.log(err && err.message));
const legacy = connect(undefined, { token: (done: (err: unknown, token?: string) => void) => done(null, "t") });
const via: "websocket" | "eventsource" | "xhr" | "fetch" | "" = legacy.via;
// A token function with a parameter of its own still returns its token.
const auth = { getToken: async (force?: boolean) => (force ? "fresh" : "cached") };
connect(undefined, { token: auth.getToken });
connect(undefined, { token: function (done: (err: unknown, token?: string) => void) { setTimeout(() => done(null, "t"), 0); } });
