/* test_main.c -- runs the library's unit test groups (cmocka). */
#include "helpers.h"

extern const struct CMUnitTest state_tests[];
extern const size_t state_tests_count;
extern const struct CMUnitTest half_open_tests[];
extern const size_t half_open_tests_count;
extern const struct CMUnitTest feature_tests[];
extern const size_t feature_tests_count;
extern const struct CMUnitTest regression_tests[];
extern const size_t regression_tests_count;

int main(void)
{
    int failed = 0;
    failed += _cmocka_run_group_tests("states", state_tests, state_tests_count, NULL, NULL);
    failed += _cmocka_run_group_tests("half_open", half_open_tests, half_open_tests_count,
                                      NULL, NULL);
    failed += _cmocka_run_group_tests("features", feature_tests, feature_tests_count, NULL, NULL);
    failed += _cmocka_run_group_tests("regressions", regression_tests, regression_tests_count,
                                      NULL, NULL);
    return failed ? 1 : 0;
}
