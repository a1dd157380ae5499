/**
 * The memory of which node asked a local client a question (cluster/answers.ts):
 * an answer is sent back once, only for the client asked, and only while the
 * asker may still wait; the memory stays bounded.
 */
import t from 'tap';
import { createAnswerRoutes } from '../../src/cluster/answers.js';

t.test('an answer goes to the node that asked, once, and only from the client asked', async (t) => {
  const routes = createAnswerRoutes();
  t.equal(routes.take('bob@x/b', 'q1'), undefined, 'nothing asked: nothing taken');
  routes.asked('n1', 'bob@x/b', 'q1');
  t.equal(routes.take('bob@x/other', 'q1'), undefined, 'another resource cannot answer it');
  t.equal(routes.take('bob@x/b', 'q2'), undefined, 'another id is not it');
  t.equal(routes.take('bob@x/b', 'q1'), 'n1');
  t.equal(routes.take('bob@x/b', 'q1'), undefined, 'forgotten once told');
});

t.test('a late answer finds nothing; old questions go first and the memory stays bounded', async (t) => {
  let now = 0;
  const routes = createAnswerRoutes(() => now, 2, 1000);
  routes.asked('n1', 'a@x/r', 'late');
  now = 1000;
  t.equal(routes.take('a@x/r', 'late'), undefined, 'past the wait');
  routes.asked('n1', 'a@x/r', 'q1');
  routes.asked('n2', 'a@x/r', 'q2');
  routes.asked('n3', 'a@x/r', 'q3');
  t.equal(routes.take('a@x/r', 'q1'), undefined, 'the oldest made room');
  t.equal(routes.take('a@x/r', 'q2'), 'n2');
  t.equal(routes.take('a@x/r', 'q3'), 'n3');
});
