// The mongo service's health check (mongosh --file, inside the container, so on localhost).
// It also sets the server up, a step per check, so that no one-shot container is needed:
//   1. no replica set yet: rs.initiate (allowed through MongoDB's localhost exception)
//   2. primary but no user yet: create the services' user `modelhub` (the localhost exception
//      allows the first user; it closes once that user exists)
//   3. healthy once `modelhub` authenticates and this member is the writable primary.
// The password is the compose secret mongo-password (made by make-secrets.sh).
const fs = require('fs');
const password = fs.readFileSync('/run/secrets/mongo-password', 'utf8').trim();
const admin = db.getSiblingDB('admin');
let authenticated = false;
try {
  authenticated = admin.auth('modelhub', password).ok === 1;
} catch (e) {
  authenticated = false;  // no such user yet (or the localhost exception is all we have)
}
if (authenticated) {
  quit(db.hello().isWritablePrimary ? 0 : 1);
}
let status = null;
try {
  status = rs.status();
} catch (e) {
  if (e.codeName !== 'NotYetInitialized') throw e;
  rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'mongo:27017'}]});
  quit(1);
}
if (!db.hello().isWritablePrimary) quit(1);
admin.createUser({user: 'modelhub', pwd: password,
                  roles: [{role: 'readWrite', db: 'modelhub'}, {role: 'dbAdmin', db: 'modelhub'}]});
quit(1);  // healthy at the next check, through the new user
