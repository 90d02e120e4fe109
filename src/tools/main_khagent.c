/* khagent: one host's agent in a facility over several hosts
 * (src/agent, docs/hosts.md). */
#include "agent/agent.h"

int
main(int argc, char **argv)
{
	return agent_main(argc, argv);
}
