#include "agent/inventory/procfs.hpp"

#include <gtest/gtest.h>
#include <sys/statvfs.h>

#include <string>

namespace gpuhub::agent {
namespace {

using namespace std::string_literals;

std::string TestData(const std::string& name) {
  std::string text;
  Status s = ReadProcFile(std::string(GPUHUB_INVENTORY_TESTDATA) + "/" + name, text);
  EXPECT_TRUE(s.ok()) << name << ": " << s.error().message;
  return text;
}

TEST(ParseCpuInfoTest, X86Sample) {
  CpuInfo info = ParseCpuInfo(TestData("cpuinfo_x86"));
  EXPECT_EQ(info.model, "AMD EPYC");
  EXPECT_EQ(info.cores, 2);
}

TEST(ParseCpuInfoTest, Arm64WithoutModelNameUsesCpuPart) {
  CpuInfo info = ParseCpuInfo(TestData("cpuinfo_arm64"));
  EXPECT_EQ(info.model, "ARM Neoverse-N1");
  EXPECT_EQ(info.cores, 4);
}

TEST(ParseCpuInfoTest, Arm32ModelNameWins) {
  CpuInfo info = ParseCpuInfo(TestData("cpuinfo_arm32"));
  EXPECT_EQ(info.model, "ARMv7 Processor rev 4 (v7l)");
  EXPECT_EQ(info.cores, 2);
}

TEST(ParseCpuInfoTest, ArmHardwareLine) {
  CpuInfo info = ParseCpuInfo(TestData("cpuinfo_arm_hardware"));
  EXPECT_EQ(info.model, "Qualcomm Technologies, Inc SDM630");
  EXPECT_EQ(info.cores, 2);  // "Processor" (capital P) is a name, not a CPU
}

TEST(ParseCpuInfoTest, Fallbacks) {
  EXPECT_EQ(ParseCpuInfo("processor : 0\nProcessor : AArch64 Processor rev 4\n").model,
            "AArch64 Processor rev 4");
  EXPECT_EQ(ParseCpuInfo("processor : 0\ncpu : POWER9, altivec supported\n").model,
            "POWER9, altivec supported");
  EXPECT_EQ(ParseCpuInfo("processor : 0\nCPU implementer : 0x61\nCPU part : 0x022\n").model,
            "Apple part 0x022");
  EXPECT_EQ(ParseCpuInfo("CPU implementer : 0x99\n").model, "CPU implementer 0x99");
  EXPECT_EQ(ParseCpuInfo("CPU part : 0xd0c\n").model, "CPU part 0xd0c");
  EXPECT_EQ(ParseCpuInfo("processor : 0\nmodel name :\nHardware : X\n").model, "X");
}

TEST(ParseCpuInfoTest, MissingModelIsUnknown) {
  CpuInfo info = ParseCpuInfo("processor\t: 0\nflags\t: fpu\n\nprocessor\t: 1\n");
  EXPECT_EQ(info.model, "unknown");
  EXPECT_EQ(info.cores, 2);
}

TEST(ParseCpuInfoTest, EmptyAndGarbage) {
  for (const std::string& text :
       {""s, "\n\n"s, ":::"s, "garbage"s, std::string(1000, '\0'), "model name"s, ":\n:"s,
        "model name\t:   \r\n"s, "\xff\xfe:\xfd"s}) {
    CpuInfo info = ParseCpuInfo(text);
    EXPECT_EQ(info.model, "unknown") << testing::PrintToString(text);
    EXPECT_EQ(info.cores, 0);
  }
  EXPECT_EQ(ParseCpuInfo("model name: Foo").model, "Foo");  // no final newline
}

TEST(ParseProcStatTest, Sample) {
  auto t = ParseProcStat(TestData("stat"));
  ASSERT_TRUE(t.ok()) << t.error().message;
  // testdata/stat: "cpu  407338 0 48278 129584 1208 0 431 3714 0 0"
  EXPECT_EQ(*t, (CpuTimes{407338, 0, 48278, 129584, 1208, 0, 431, 3714}));
  EXPECT_EQ(t->Total(), 407338u + 48278 + 129584 + 1208 + 431 + 3714);
  EXPECT_EQ(t->Idle(), 129584u + 1208);
}

TEST(ParseProcStatTest, OldKernelWithFourFields) {
  auto t = ParseProcStat("cpu 1 2 3 4\ncpu0 1 2 3 4\n");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(*t, (CpuTimes{1, 2, 3, 4, 0, 0, 0, 0}));
}

TEST(ParseProcStatTest, CpuLineNeedNotBeFirst) {
  auto t = ParseProcStat("intr 5\ncpu0 9 9 9 9\ncpu  1 2 3 4 5 6 7 8 9 10\n");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(*t, (CpuTimes{1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(ParseProcStatTest, Errors) {
  for (const std::string& text :
       {""s, "cpu"s, "cpu "s, "cpu  1 2 3\n"s, "cpu0 1 2 3 4\n"s, "cpu  a b c d\n"s,
        "cpu  -1 2 3 4\n"s, "cpu  99999999999999999999999 2 3 4\n"s, std::string(100, '\0'),
        "intr 1 2 3 4\n"s}) {
    auto t = ParseProcStat(text);
    EXPECT_FALSE(t.ok()) << testing::PrintToString(text);
    if (!t.ok()) {
      EXPECT_EQ(t.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(CpuUsagePercentTest, Deltas) {
  CpuTimes a{100, 0, 100, 800, 0, 0, 0, 0};
  CpuTimes b{150, 0, 150, 900, 0, 0, 0, 0};  // 100 busy of 200
  EXPECT_DOUBLE_EQ(CpuUsagePercent(a, b), 50.0);
  EXPECT_DOUBLE_EQ(CpuUsagePercent(a, a), 0.0);
  CpuTimes idle = a;
  idle.idle += 100;
  idle.iowait += 100;
  EXPECT_DOUBLE_EQ(CpuUsagePercent(a, idle), 0.0);
  CpuTimes busy = a;
  busy.steal += 10;
  busy.irq += 10;
  EXPECT_DOUBLE_EQ(CpuUsagePercent(a, busy), 100.0);
}

TEST(CpuUsagePercentTest, BackwardsCountersCountAsNoTime) {
  CpuTimes a{100, 0, 100, 800, 50, 0, 0, 0};
  CpuTimes b{200, 0, 100, 900, 10, 0, 0, 0};  // iowait went backwards
  EXPECT_DOUBLE_EQ(CpuUsagePercent(a, b), 50.0);
  EXPECT_DOUBLE_EQ(CpuUsagePercent(b, CpuTimes{}), 0.0);  // everything went backwards
}

TEST(ParseMemInfoTest, Sample) {
  auto m = ParseMemInfo(TestData("meminfo"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  // MemTotal 24684096 kB, MemAvailable 21747248 kB.
  EXPECT_EQ(m->total, 24105);
  EXPECT_EQ(m->used, 2868);
}

TEST(ParseMemInfoTest, WithoutMemAvailable) {
  auto m = ParseMemInfo(TestData("meminfo_no_available"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  // 8167848 - (1048576 + 524288 + 2097152) = 4497832 kB.
  EXPECT_EQ(m->total, 7976);
  EXPECT_EQ(m->used, 4392);
}

TEST(ParseMemInfoTest, AvailableAboveTotalGivesZeroUsed) {
  auto m = ParseMemInfo("MemTotal: 2048 kB\nMemAvailable: 4096 kB\n");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->total, 2);
  EXPECT_EQ(m->used, 0);
}

TEST(ParseMemInfoTest, HugeValuesDoNotOverflow) {
  auto m = ParseMemInfo("MemTotal: 18446744073709551615 kB\nMemAvailable: 0 kB\n");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_GT(m->total, 0);
  EXPECT_GE(m->used, 0);
}

TEST(ParseMemInfoTest, Errors) {
  for (const std::string& text :
       {""s, "garbage"s, "MemAvailable: 5 kB\n"s, "MemTotal: x kB\nMemAvailable: 1 kB\n"s,
        "MemTotal: 100 kB\n"s, "MemTotal: 100 kB\nBuffers: 1 kB\n"s, std::string(64, '\0'),
        "MemTotal:\n"s}) {
    auto m = ParseMemInfo(text);
    EXPECT_FALSE(m.ok()) << testing::PrintToString(text);
    if (!m.ok()) {
      EXPECT_EQ(m.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(DiskUsageTest, RootMatchesStatvfs) {
  auto d = DiskUsage("/");
  ASSERT_TRUE(d.ok()) << d.error().message;
  struct statvfs st {};
  ASSERT_EQ(::statvfs("/", &st), 0);
  EXPECT_EQ(d->total, static_cast<int64_t>((uint64_t{st.f_blocks} * st.f_frsize) >> 30));
  EXPECT_GE(d->used, 0);
  EXPECT_LE(d->used, d->total);
}

TEST(DiskUsageTest, MissingPath) {
  auto d = DiskUsage("/no/such/path/for/gpuhub");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("/no/such/path/for/gpuhub"), std::string::npos);
}

TEST(ReadProcFileTest, ReadsProcAndReusesBuffer) {
  std::string buf;
  ASSERT_TRUE(ReadProcFile("/proc/self/stat", buf).ok());
  EXPECT_FALSE(buf.empty());
  ASSERT_TRUE(ReadProcFile("/proc/meminfo", buf).ok());
  EXPECT_EQ(buf.rfind("MemTotal:", 0), 0u);
  size_t capacity = buf.capacity();
  ASSERT_TRUE(ReadProcFile("/proc/meminfo", buf).ok());
  EXPECT_EQ(buf.capacity(), capacity);
}

TEST(ReadProcFileTest, Errors) {
  std::string buf = "old";
  Status s = ReadProcFile("/no/such/file", buf);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kNotFound);
  s = ReadProcFile("/proc/self/maps", buf, 10);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kTooLarge);
  EXPECT_TRUE(buf.empty());
}

}  // namespace
}  // namespace gpuhub::agent
