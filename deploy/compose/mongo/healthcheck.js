// A replica set member's health check (mongosh --file, inside the container, so on localhost).
// The member MONGO_INITIATOR names also sets the set up, a step per check, so that no one-shot
// container is needed:
//   1. no replica set yet: rs.initiate with every member of MONGO_MEMBERS (retried until they all
//      answer), this one first in priority so that it is the first primary
//   2. primary, no users yet: create the user administrator `admin` (the localhost exception
//      allows exactly one first user, and only a user administrator; it closes once one exists)
//   3. as `admin`: create the services' user `modelhub`, which may read and write the `modelhub`
//      database and its indexes, and nothing else
// Every member is healthy once `modelhub` authenticates on it (the users are replicated) and it is
// the primary or a secondary of the set.
// The passwords are the compose secrets mongo-password and mongo-admin-password (make-secrets.sh).
// (Checked against mongod 6.0.5 with a keyfile: the localhost exception refuses a first user that
// is not a user administrator, so `modelhub` cannot be that first user.)
const fs = require('fs');
const secret = (name) => fs.readFileSync(`/run/secrets/${name}`, 'utf8').trim();
const admin = db.getSiblingDB('admin');
const login = (user, password) => {
  try {
    return admin.auth(user, password).ok === 1;
  } catch (e) {
    return false;  // no such user yet, or a wrong password (then the steps below refuse too)
  }
};
const hello = db.hello();  // answered without authentication
const member = process.env.MONGO_MEMBER;
if (login('modelhub', secret('mongo-password'))) {
  quit(hello.isWritablePrimary || hello.secondary ? 0 : 1);
}
if (member !== process.env.MONGO_INITIATOR) quit(1);  // the initiator sets the set and users up
if (!hello.setName) {
  const hosts = process.env.MONGO_MEMBERS.split(',');
  rs.initiate({_id: 'rs0', members: hosts.map((host, i) => ({_id: i, host, priority: host === member ? 2 : 1}))});
  quit(1);
}
if (!hello.isWritablePrimary) quit(1);
if (!login('admin', secret('mongo-admin-password'))) {
  admin.createUser({user: 'admin', pwd: secret('mongo-admin-password'),
                    roles: [{role: 'userAdminAnyDatabase', db: 'admin'}]});
  if (!login('admin', secret('mongo-admin-password'))) quit(1);
}
admin.createUser({user: 'modelhub', pwd: secret('mongo-password'),
                  roles: [{role: 'readWrite', db: 'modelhub'}, {role: 'dbAdmin', db: 'modelhub'}]});
quit(1);  // healthy at the next check, through the new user
