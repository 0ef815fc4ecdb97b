// The signed-in member, for every screen.
import { createContext } from "preact";
import { useContext } from "preact/hooks";

export interface MemberContext {
  memberId: string;
  // The member's IANA zone (their profile's, else the browser's): countdowns and dates.
  zone: string;
  signOut: () => void;
}

export const Member = createContext<MemberContext>({ memberId: "", zone: "UTC", signOut: () => undefined });

export function useMember(): MemberContext {
  return useContext(Member);
}
