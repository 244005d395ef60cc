import { connect } from "./client.js";
const c = connect("/", { transports: ["carrier-pigeon"] });
c.publish(42);
