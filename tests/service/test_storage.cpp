// Journal, result store, queue and frame packing: the parts that make
// `accepted` durable and results servable by id.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
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

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Five records (a..e) appended one by one; returns each record's [begin, end).
std::vector<std::pair<size_t, size_t>> five_records(const test::TempDir& dir, std::string* path) {
  std::vector<std::pair<size_t, size_t>> spans;
  std::vector<JournalEntry> unfinished;
  Journal journal(dir.path(), &unfinished);
  for (const char* id : {"a", "b", "c", "d", "e"}) {
    const size_t begin = journal.size_bytes();
    journal.append_accepted({entry(id, std::string("{") + id + "}")});
    spans.push_back({begin, journal.size_bytes()});
  }
  *path = journal.path();
  return spans;
}

std::vector<std::string> ids_of(const std::vector<JournalEntry>& entries) {
  std::vector<std::string> ids;
  for (const auto& e : entries) ids.push_back(e.id);
  return ids;
}

TEST(Journal, ADamagedRecordCostsOnlyItselfWhereverItIs) {
  // A flipped byte in the first, a middle and the last record: replay
  // resynchronizes on the next intact record.
  const std::vector<std::pair<int, std::vector<std::string>>> cases = {
      {0, {"b", "c", "d", "e"}}, {2, {"a", "b", "d", "e"}}, {4, {"a", "b", "c", "d"}}};
  for (const auto& [damaged, expected] : cases) {
    test::TempDir dir;
    std::string path;
    auto spans = five_records(dir, &path);
    std::string bytes = slurp(path);
    for (size_t offset : {size_t(9), spans[damaged].second - spans[damaged].first - 2}) {  // length, then body
      std::string copy = bytes;
      copy[spans[damaged].first + offset] ^= 0x40;
      spit(path, copy);
      std::vector<JournalEntry> unfinished;
      Journal journal(dir.path(), &unfinished);
      EXPECT_EQ(ids_of(unfinished), expected) << "record " << damaged << " byte " << offset;
      const JournalReplay& replay = journal.replay();
      EXPECT_EQ(replay.records, 4u);
      if (damaged < 4) {
        EXPECT_EQ(replay.corrupt_regions, 1u);
        EXPECT_EQ(replay.corrupt_bytes, spans[damaged].second - spans[damaged].first);
        ASSERT_FALSE(replay.quarantined_path.empty());
        EXPECT_EQ(slurp(replay.quarantined_path), copy) << "the damaged file is kept as it was";
      } else {
        EXPECT_EQ(replay.tail_bytes, spans[4].second - spans[4].first);  // indistinguishable from a torn tail
      }
      spit(path, bytes);  // restore for the next offset
    }
  }
}

TEST(Journal, RecordsOfTheFirstFormatStillReplay) {
  test::TempDir dir;
  // "FEUJ" records: [magic][kind][length][crc32(body)][body], as the first release wrote them.
  std::string times;
  put_u64(&times, 1000);
  put_u64(&times, 0);
  std::string body = pack_frames({"old", "digest-old", times, "{}"});
  std::string record;
  put_u32(&record, 0x4a554546);
  put_u32(&record, 1);
  put_u32(&record, static_cast<uint32_t>(body.size()));
  put_u32(&record, crc32_of(body.data(), body.size()));
  spit(dir.file("journal.log"), record + body);
  std::vector<JournalEntry> unfinished;
  Journal journal(dir.path(), &unfinished);
  EXPECT_EQ(ids_of(unfinished), std::vector<std::string>{"old"});
}

TEST(Journal, AFailedAppendLeavesNoPartialRecordBehind) {
  test::TempDir dir;
  std::string path;
  five_records(dir, &path);
  const uint64_t good = std::filesystem::file_size(path);
  // A child whose file-size limit cuts a big append short (EFBIG after a
  // partial write, as a full disk would), then appends a small record.
  pid_t child = fork();
  if (child == 0) {
    signal(SIGXFSZ, SIG_IGN);
    std::vector<JournalEntry> unfinished;
    Journal journal(dir.path(), &unfinished);  // compacts to the same five records
    rlimit limit{static_cast<rlim_t>(good + 4096), static_cast<rlim_t>(good + 4096)};
    setrlimit(RLIMIT_FSIZE, &limit);
    int code = 0;
    try {
      journal.append_accepted({entry("big", std::string(64 * 1024, 'x'))});
      code = 10;  // should have failed
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kIoError) code = 11;
    }
    try {
      journal.append_accepted({entry("after", "{after}")});
    } catch (const Error&) {
      code = 12;
    }
    _exit(code);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "10: the big append did not fail; 11: not io_error; 12: the next append failed";
  std::vector<JournalEntry> unfinished;
  Journal journal(dir.path(), &unfinished);
  EXPECT_EQ(ids_of(unfinished), (std::vector<std::string>{"a", "b", "c", "d", "e", "after"}));
  EXPECT_EQ(journal.dropped_bytes(), 0u) << "a partial record was left in the file";
}

TEST(Journal, AFullDiskAtStartSaysWhy) {
  test::TempDir dir;
  const std::string state = dir.file("state");
  std::filesystem::create_directories(state);
  if (test::run_command("mount -t tmpfs -o size=64k tmpfs '" + state + "' 2>/dev/null") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root; CI runs as root)";
  struct Unmount {
    std::string path;
    ~Unmount() { test::run_command("umount -l '" + path + "'"); }
  } unmount{state};
  {
    std::vector<JournalEntry> unfinished;
    Journal journal(state, &unfinished);
    journal.append_accepted({entry("kept", std::string(2000, 'k'))});
  }
  test::run_command("dd if=/dev/zero of='" + state + "/filler' bs=4k 2>/dev/null");
  try {
    std::vector<JournalEntry> unfinished;
    Journal journal(state, &unfinished);  // the compaction needs space for a copy
    FAIL() << "a journal was rewritten on a full disk";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIoError);
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
  }
  std::filesystem::remove(state + "/filler");
  std::vector<JournalEntry> unfinished;
  Journal journal(state, &unfinished);
  EXPECT_EQ(ids_of(unfinished), std::vector<std::string>{"kept"});  // nothing was lost by the failed start
}

TEST(Journal, AJournalThatIsADirectoryIsNamedInTheError) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("journal.log"));
  std::vector<JournalEntry> unfinished;
  try {
    Journal journal(dir.path(), &unfinished);
    FAIL() << "opened a directory as the journal";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIoError);
    EXPECT_NE(std::string(e.what()).find(dir.file("journal.log")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
}

TEST(ResultStore, StoresServesPersistsAndPrunes) {
  test::TempDir dir;
  Message reply;
  reply.header = {{"id", "j/1"}, {"status", "done"}};
  reply.payloads = {std::string("\x89PNG\0\x01", 6)};
  {
    ResultStore store(dir.path(), 60000, 1000, 1 << 30);
    store.put("j/1", "d1", reply);
    EXPECT_TRUE(store.contains("j/1"));
    EXPECT_FALSE(store.contains("j/2"));
    EXPECT_FALSE(store.get("j/2").has_value());
  }
  ResultStore store(dir.path(), 60000, 1000, 1 << 30);  // a restart finds it again
  ASSERT_TRUE(store.contains("j/1"));
  EXPECT_EQ(store.digest_of("j/1"), "d1");
  auto back = store.get("j/1");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->header, reply.header);
  EXPECT_EQ(back->payloads, reply.payloads);
  EXPECT_EQ(store.prune(now_unix_ms()), 0u);
  EXPECT_EQ(store.prune(now_unix_ms() + 61000), 1u);
  EXPECT_FALSE(store.contains("j/1"));
  EXPECT_FALSE(ResultStore(dir.path(), 60000, 1000, 1 << 30).contains("j/1"));
}

Message result_reply(const std::string& id, size_t payload_bytes = 100) {
  Message reply;
  reply.header = {{"id", id}, {"status", "done"}};
  reply.payloads = {std::string(payload_bytes, 'p')};
  return reply;
}

TEST(ResultStore, ADamagedResultIsNeverServedAndIsSetAside) {
  test::TempDir dir;
  ResultStore store(dir.path(), 60000, 1000, 1 << 30);
  store.put("flip", "d", result_reply("flip"));
  std::string file;
  for (const auto& item : std::filesystem::directory_iterator(dir.path()))
    if (item.path().extension() == ".res") file = item.path().string();
  ASSERT_FALSE(file.empty());
  std::string bytes = slurp(file);
  bytes[bytes.size() - 10] ^= 0x01;  // one bit of the image
  spit(file, bytes);
  try {
    store.get("flip");
    FAIL() << "a damaged result was served";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
  }
  EXPECT_TRUE(std::filesystem::exists(file + ".corrupt"));
  EXPECT_FALSE(store.contains("flip"));
  EXPECT_FALSE(store.get("flip").has_value());
}

TEST(ResultStore, ExpiredResultsAreGoneOnReadBeforeAnyPrune) {
  test::TempDir dir;
  ResultStore store(dir.path(), 50, 1000, 1 << 30);
  store.put("short", "d", result_reply("short"));
  EXPECT_TRUE(store.contains("short"));
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  EXPECT_FALSE(store.contains("short"));
  EXPECT_FALSE(store.get("short").has_value());
  EXPECT_EQ(store.digest_of("short"), "");
  EXPECT_EQ(store.prune(now_unix_ms()), 1u);  // and prune deletes the file
}

TEST(ResultStore, BoundedByCountAndBytesOldestEvictedFirst) {
  test::TempDir dir;
  {
    ResultStore store(dir.path(), 60000, 3, 1 << 30);
    for (const char* id : {"r1", "r2", "r3", "r4"}) {
      store.put(id, "d", result_reply(id));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // distinct finish times
    }
    EXPECT_EQ(store.size(), 3u);
    EXPECT_FALSE(store.contains("r1"));
    EXPECT_TRUE(store.contains("r2") && store.contains("r4"));
    EXPECT_EQ(store.evicted(), 1u);
  }
  size_t files = 0;
  for (const auto& item : std::filesystem::directory_iterator(dir.path())) files += item.path().extension() == ".res";
  EXPECT_EQ(files, 3u);  // the evicted file is deleted, not only forgotten

  test::TempDir bytes_dir;
  ResultStore store(bytes_dir.path(), 60000, 1000, 2500);  // room for two ~1 KB results
  for (const char* id : {"b1", "b2", "b3"}) {
    store.put(id, "d", result_reply(id, 1000));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_FALSE(store.contains("b1"));
  EXPECT_TRUE(store.contains("b2") && store.contains("b3"));
  EXPECT_LE(store.bytes(), 2500u);
}

TEST(ResultStore, PutManyStoresABatchOrNothing) {
  test::TempDir dir;
  ResultStore store(dir.file("results"), 60000, 1000, 1 << 30);
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
