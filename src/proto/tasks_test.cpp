#include "proto/tasks.hpp"

#include <gtest/gtest.h>

namespace gpuhub::proto {
namespace {

using nlohmann::json;

TEST(TaskStart, RoundTripsAndNamesBadFields) {
  TaskStart t{.task_id = 7,
              .container = "gpuhub-alice-dev",
              .command = "python train.py",
              .gpus = {0, 3},
              .deadline_ms = 1795500000000,
              .kill_grace_ms = 30000};
  auto back = TaskStartFromJson(ToJson(t));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, t);
  json bad = ToJson(t);
  bad["gpus"] = json::array({0, -1});
  EXPECT_EQ(TaskStartFromJson(bad).error().message, "gpus[1] must not be negative");
  bad = ToJson(t);
  bad.erase("command");
  EXPECT_EQ(TaskStartFromJson(bad).error().message, "command is missing");
}

TEST(TaskReport, RoundTripsEveryStatus) {
  for (const char* status : {"running", "completed", "failed", "expired", "cancelled"}) {
    TaskReport r{.task_id = 3, .status = status, .start_ms = 5};
    if (std::string(status) == "failed") r.exit_code = 2;
    auto back = TaskReportFromJson(ToJson(r));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, r);
  }
  EXPECT_TRUE(IsFinalTaskStatus("expired"));
  EXPECT_FALSE(IsFinalTaskStatus("running"));
  EXPECT_FALSE(IsFinalTaskStatus("queued"));
}

TEST(TaskReport, RejectsBadValues) {
  json j = ToJson(TaskReport{.task_id = 3, .status = "running"});
  j["status"] = "queued";
  EXPECT_EQ(TaskReportFromJson(j).error().message,
            "status must be one of running, completed, failed, expired, cancelled");
  j["status"] = "failed";
  j["exit_code"] = 1000;
  EXPECT_EQ(TaskReportFromJson(j).error().message,
            "exit_code must be null or an integer -255..255");
  j["exit_code"] = -9;
  EXPECT_TRUE(TaskReportFromJson(j).ok());
  j["released"] = "yes";
  EXPECT_EQ(TaskReportFromJson(j).error().message, "released must be true or false");
}

TEST(TasksReport, RoundTripsAndNamesTheBadEntry) {
  std::vector<TaskReport> list = {{.task_id = 1, .status = "running"},
                                  {.task_id = 2, .status = "completed", .exit_code = 0}};
  auto back = TasksReportFromJson(TasksReportJson(list));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, list);
  json bad = TasksReportJson(list);
  bad["tasks"][1].erase("end_ms");
  EXPECT_EQ(TasksReportFromJson(bad).error().message, "tasks[1].end_ms is missing");
}

TEST(TaskOutputAndIds, RoundTrip) {
  TaskOutput o{.task_id = 9, .data = "epoch 1\n"};
  EXPECT_EQ(*TaskOutputFromJson(ToJson(o)), o);
  EXPECT_EQ(*TaskIdFromJson({{"task_id", 4}}), 4);
  EXPECT_FALSE(TaskIdFromJson({{"task_id", "4"}}).ok());
}

}  // namespace
}  // namespace gpuhub::proto
