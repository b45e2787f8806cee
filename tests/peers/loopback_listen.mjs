// Preloaded into a Node peer (`node --import`): a server that listens on a port without
// naming a host is bound to 127.0.0.1 instead of every interface, and the port it got is
// printed as `LISTENING <port>` (so a test can ask for port 0). The conformance reference
// server calls `app.listen(PORT)`.
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const bare = typeof port === 'number' || (typeof port === 'string' && /^\d+$/.test(port));
  if (bare && typeof args[1] !== 'string') {
    args.splice(1, 0, '127.0.0.1');
    this.once('listening', () => console.log(`LISTENING ${this.address().port}`));
  }
  return listen.apply(this, args);
};
