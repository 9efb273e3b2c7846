// Journal, result store, queue and frame packing: the parts that make
// `accepted` durable and results servable by id.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "service/frames.h"
#include "service/job_queue.h"
#include "service/journal.h"
#include "service/result_store.h"
#include "service/stats.h"
#include "test_support.h"

namespace feu::service {
namespace {

JournalEntry entry(const std::string& id, const std::string& header) {
  return JournalEntry{id, "digest-" + id, 1000, 0, {header, std::string("\0\x01\x02", 3)}};
}

TEST(Frames, PackUnpackRoundTripAndRejectTruncation) {
  std::vector<Frame> frames = {"", std::string("\0\xff", 2), std::string(1000, 'x')};
  std::string packed = pack_frames(frames);
  std::vector<Frame> back;
  ASSERT_TRUE(unpack_frames(packed.data(), packed.size(), &back));
  EXPECT_EQ(back, frames);
  for (size_t cut : {size_t(0), size_t(3), size_t(9), packed.size() - 1})
    EXPECT_FALSE(unpack_frames(packed.data(), cut, &back)) << cut;
  std::string longer = packed + "z";
  EXPECT_FALSE(unpack_frames(longer.data(), longer.size(), &back));
  std::string absurd;
  put_u32(&absurd, 0xffffffff);
  EXPECT_FALSE(unpack_frames(absurd.data(), absurd.size(), &back));
}

TEST(Journal, ReplaysAcceptedJobsThatAreNotDone) {
  test::TempDir dir;
  {
    std::vector<JournalEntry> unfinished;
    Journal journal(dir.path(), &unfinished);
    EXPECT_TRUE(unfinished.empty());
    journal.append_accepted({entry("a", "{1}"), entry("b", "{2}")});
    journal.append_accepted({entry("c", "{3}")});
    journal.append_done("b");
  }
  std::vector<JournalEntry> unfinished;
  Journal journal(dir.path(), &unfinished);
  ASSERT_EQ(unfinished.size(), 2u);
  EXPECT_EQ(unfinished[0].id, "a");
  EXPECT_EQ(unfinished[1].id, "c");
  EXPECT_EQ(unfinished[1].frames, entry("c", "{3}").frames);
  EXPECT_EQ(unfinished[0].digest, "digest-a");
  EXPECT_EQ(unfinished[0].accepted_ms, 1000);
  EXPECT_EQ(journal.dropped_bytes(), 0u);
}

TEST(Journal, DropsATornTailButKeepsEverythingBeforeIt) {
  test::TempDir dir;
  std::string path;
  {
    std::vector<JournalEntry> unfinished;
    Journal journal(dir.path(), &unfinished);
    journal.append_accepted({entry("a", "{1}"), entry("b", "{2}")});
    path = journal.path();
  }
  // A crash mid-append: half a record, then (worse) flipped bits in a record.
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << "FEUJ\x01\x00\x00\x00garbage";
  }
  std::vector<JournalEntry> unfinished;
  {
    Journal journal(dir.path(), &unfinished);
    EXPECT_EQ(unfinished.size(), 2u);
    EXPECT_GT(journal.dropped_bytes(), 0u);
    journal.append_accepted({entry("c", "{3}")});  // appends after the compacted good part
  }
  Journal again(dir.path(), &unfinished);
  ASSERT_EQ(unfinished.size(), 3u);
  EXPECT_EQ(unfinished[2].id, "c");
  EXPECT_EQ(again.dropped_bytes(), 0u);
}

TEST(Journal, CorruptRecordStopsReplayThere) {
  test::TempDir dir;
  std::string path;
  {
    std::vector<JournalEntry> unfinished;
    Journal journal(dir.path(), &unfinished);
    journal.append_accepted({entry("a", "{1}")});
    journal.append_accepted({entry("b", "{2}")});
    path = journal.path();
  }
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() - 2] ^= 0x40;  // a bit flip inside b's body: its CRC fails
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  std::vector<JournalEntry> unfinished;
  Journal journal(dir.path(), &unfinished);
  ASSERT_EQ(unfinished.size(), 1u);
  EXPECT_EQ(unfinished[0].id, "a");
}

TEST(ResultStore, StoresServesPersistsAndPrunes) {
  test::TempDir dir;
  Message reply;
  reply.header = {{"id", "j/1"}, {"status", "done"}};
  reply.payloads = {std::string("\x89PNG\0\x01", 6)};
  {
    ResultStore store(dir.path(), 60000);
    store.put("j/1", "d1", reply);
    EXPECT_TRUE(store.contains("j/1"));
    EXPECT_FALSE(store.contains("j/2"));
    EXPECT_FALSE(store.get("j/2").has_value());
  }
  ResultStore store(dir.path(), 60000);  // a restart finds it again
  ASSERT_TRUE(store.contains("j/1"));
  EXPECT_EQ(store.digest_of("j/1"), "d1");
  auto back = store.get("j/1");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->header, reply.header);
  EXPECT_EQ(back->payloads, reply.payloads);
  EXPECT_EQ(store.prune(now_unix_ms()), 0u);
  EXPECT_EQ(store.prune(now_unix_ms() + 61000), 1u);
  EXPECT_FALSE(store.contains("j/1"));
  EXPECT_FALSE(ResultStore(dir.path(), 60000).contains("j/1"));
}

TEST(ResultStore, PutManyStoresABatchOrNothing) {
  test::TempDir dir;
  ResultStore store(dir.file("results"), 60000);
  std::vector<Message> replies(3);
  std::vector<ResultStore::Item> items;
  for (int i = 0; i < 3; ++i) {
    replies[i].header = {{"id", "b" + std::to_string(i)}, {"status", "done"}};
    replies[i].payloads = {std::string(10 + i, char('a' + i))};
  }
  for (int i = 0; i < 3; ++i) items.push_back({"b" + std::to_string(i), "d", &replies[i]});
  store.put_many(items);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(store.get("b" + std::to_string(i))->payloads, replies[i].payloads);

  // The directory vanished: an io_error, nothing indexed, no temporaries left.
  std::filesystem::remove_all(dir.file("results"));
  items[0].id = "c0";
  EXPECT_THROW(store.put_many(items), Error);
  EXPECT_FALSE(store.contains("c0"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("results")));
}

JobPtr job(const std::string& id, RequestType type = RequestType::kEdit, int64_t deadline = 0) {
  auto j = std::make_shared<Job>();
  j->id = id;
  j->type = type;
  j->deadline_ms = deadline;
  return j;
}

TEST(JobQueue, BoundedBatchedAndExpiring) {
  using std::chrono::milliseconds;
  JobQueue queue(3);
  EXPECT_TRUE(queue.push(job("a")));
  EXPECT_TRUE(queue.push(job("b")));
  EXPECT_TRUE(queue.push(job("c", RequestType::kRetrieve)));
  EXPECT_FALSE(queue.push(job("d")));
  queue.push_recovered(job("e"));  // recovered jobs are never refused
  EXPECT_EQ(queue.size(), 4u);
  auto batch = queue.pop_batch(8, milliseconds(0), milliseconds(10));
  ASSERT_EQ(batch.size(), 2u);  // edits up to the retrieve
  EXPECT_EQ(batch[0]->id, "a");
  EXPECT_EQ(batch[1]->id, "b");
  batch = queue.pop_batch(8, milliseconds(0), milliseconds(10));
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0]->type, RequestType::kRetrieve);
  EXPECT_TRUE(queue.remove("e"));
  EXPECT_FALSE(queue.remove("e"));
  EXPECT_TRUE(queue.pop_batch(8, milliseconds(0), milliseconds(10)).empty());

  queue.push(job("late", RequestType::kEdit, 50));
  queue.push(job("fine", RequestType::kEdit, 0));
  auto expired = queue.take_expired(100);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0]->id, "late");
  EXPECT_TRUE(queue.contains("fine"));
}

TEST(JobQueue, WaitsUpToMaxWaitToFillABatch) {
  JobQueue queue(10);
  queue.push(job("first"));
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    queue.push(job("second"));
  });
  auto batch = queue.pop_batch(2, std::chrono::milliseconds(2000), std::chrono::milliseconds(10));
  producer.join();
  EXPECT_EQ(batch.size(), 2u);
}

TEST(Stats, PercentilesOverTheWindow) {
  LatencyWindow window(100);
  for (int i = 1; i <= 100; ++i) window.add(i);
  EXPECT_DOUBLE_EQ(window.percentile(0.5), 50);
  EXPECT_DOUBLE_EQ(window.percentile(0.95), 95);
  EXPECT_DOUBLE_EQ(window.percentile(0.99), 99);
  for (int i = 0; i < 100; ++i) window.add(1000);  // old samples leave the window
  EXPECT_DOUBLE_EQ(window.percentile(0.5), 1000);
  EXPECT_EQ(window.summary()["count"], 200);
}

}  // namespace
}  // namespace feu::service
